"""A stack of runs (arreg_core.stacked) computes what its runs compute one at a time: the same
logits, and after training steps the same weights, to rounding; eps 0 in a stack is standard
training; bad stacks are refused with one clear error."""
import dataclasses
import functools
import json

import pytest
import torch

from arreg_core import runs, stacked
from arreg_core.cuda_graphs import GraphedStep
from arreg_core.data import load_data
from arreg_core.models import build_model
from arreg_core.train import TrainConfig, attack_noise, build_optimizer, training_step

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]


def networks(k: int, arch: str = "resnet8", device: str = "cpu"):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        net = build_model(arch, 10, dataset="synthetic")
        with torch.no_grad():  # Fixup zeroes the last layers: perturb them so every weight matters
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        out.append(net.to(device))
    return out


def test_a_stack_gives_each_network_its_own_logits():
    nets = networks(3)
    x = torch.rand(3 * 5, 3, 32, 32)
    logits = stacked.StackedNetworks(nets)(x)
    expected = torch.cat([net(block) for net, block in zip(nets, x.chunk(3))])
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def sweep(precision: str, batch: int, device: str, eps=(0.0, 4.0, 8.0), steps: int = 2):
    """The configs of one AR sweep and seed, and its batches and random-start draws (shared by its runs)."""
    configs = [TrainConfig(dataset="synthetic", arch="resnet8", method="pgd" if e else "none", eps=e, attack_steps=3,
                           attack_step=2.0, batch_size=batch, epochs=2, milestones=(), precision=precision)
               for e in eps]
    generator = torch.Generator(device).manual_seed(0)
    batches = [(torch.rand(batch, 3, 32, 32, generator=generator, device=device),
                torch.randint(0, 10, (batch,), generator=generator, device=device)) for _ in range(steps)]
    return configs, batches, [attack_noise(configs[1], x, generator) for x, _ in batches]


def stack_trainer(configs, batch: int, device: str, cache: bool = True):
    """A stack of the sweep's networks, its optimizer and its step over one batch of the sweep."""
    nets = networks(len(configs), device=device)
    stack = stacked.StackedNetworks(nets)
    optimizer, _ = build_optimizer(configs[0], stack)
    totals = (torch.zeros(len(configs), device=device), torch.zeros(len(configs), device=device, dtype=torch.long))
    step = functools.partial(stacked.training_step, stack, optimizer, totals=totals, steps=configs[1].attack_steps,
                             precision=configs[0].precision, cache=cache,
                             eps=stacked.radius([c.eps for c in configs], batch, device),
                             step=stacked.radius([c.attack_step for c in configs], batch, device))
    k = len(configs)
    return nets, stack, totals, lambda x, y, noise: step(x.repeat(k, 1, 1, 1), y.repeat(k), noise.repeat(k, 1, 1, 1))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_training_a_stack_is_training_each_run_alone(device, precision):
    """Three runs of one AR sweep and seed (eps 0, 4 and 8: same batches and random-start draws),
    two steps: the stack's weights, unstacked, are each run's own (bf16: to its rounding)."""
    batch = 8
    configs, batches, noises = sweep(precision, batch, device)
    alone = networks(3, device=device)
    for net, config in zip(alone, configs):
        optimizer, _ = build_optimizer(config, net)
        totals = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
        step = functools.partial(training_step, net, optimizer, config=config, scale=1.0, totals=totals)
        for (x, y), noise in zip(batches, noises):
            step(x, y, noise if config.method == "pgd" else None)

    together, stack, totals, step = stack_trainer(configs, batch, device)
    for (x, y), noise in zip(batches, noises):
        step(x, y, noise)
    stack.unstack_into(together)
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if precision == "fp32" else {"rtol": 0.05, "atol": 2e-3}
    for a, b in zip(alone, together):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, **tolerance, msg=lambda m: f"{name}: {m}")
    assert totals[0].shape == totals[1].shape == (3,)
    assert all(0 <= int(c) <= 2 * batch for c in totals[1]) and all(float(loss) > 0 for loss in totals[0])


def test_a_stack_holds_its_networks_weights_and_refuses_what_it_cannot_hold():
    nets = networks(2)
    stack = stacked.StackedNetworks(nets)
    assert sum(p.numel() for p in stack.parameters()) == 2 * sum(p.numel() for p in nets[0].parameters())
    with pytest.raises(ValueError, match="2 equal blocks"):
        stack(torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="batch norm cannot be stacked"):
        stacked.StackedNetworks([torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))] * 2)
    with pytest.raises(ValueError, match="holds 2 networks"):
        stack.unstack_into(nets[:1])
    with pytest.raises(ValueError, match="holds 2 networks"):
        stack.restack_from(nets + nets)
    with pytest.raises(ValueError, match=">= 0 on the 0-255 scale"):
        stacked.radius([4, -1], 8)
    assert stacked.radius([0, 255], 2).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 2e-2)])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_a_graphed_stack_trains_like_the_eager_stack(device, precision, rel):
    """The stack's step captured as one CUDA graph (cuda_graphs.GraphedStep) and replayed trains
    like the eager stack: the same weights to the precision's rounding, and the graph was replayed."""
    batch = 16
    configs, batches, noises = sweep(precision, batch, device, steps=5)
    eager_nets, eager_stack, _, eager_step = stack_trainer(configs, batch, device)
    graph_nets, graph_stack, _, graph_step = stack_trainer(configs, batch, device, cache=False)
    graphed = GraphedStep(graph_step)
    for (x, y), noise in zip(batches, noises):
        eager_step(x, y, noise)
        graphed(x, y, noise)
    assert graphed.captured
    for a, b in zip(eager_stack.parameters(), graph_stack.parameters()):
        scale = a.abs().max().clamp_min(1e-3)
        assert ((a - b).abs().max() / scale).item() <= rel


# --- runs trained as one stack, through the run store ----------------------------------------------

def tiny(**fields) -> TrainConfig:
    base = dict(dataset="synthetic", arch="resnet8", n_train=120, n_test=60, epochs=3, batch_size=50,
                milestones=(2,), method="pgd", eps=8.0, attack_steps=2, attack_step=4.0)
    return TrainConfig(**{**base, **fields})


SWEEP = [tiny(eps=4.0, seed=0), tiny(eps=8.0, attack_step=3.0, seed=1), tiny(eps=16.0, seed=0, eps_warmup_epochs=2)]
CLEAN = [tiny(method="none", eps=0.0, seed=0), tiny(method="none", eps=0.0, seed=1, spectral_norm=1.5)]


def weights(run) -> dict:
    return runs.load_checkpoint(run.path)["model"]


@pytest.mark.parametrize("configs", [SWEEP, CLEAN], ids=["pgd", "standard"])
def test_runs_trained_as_one_stack_are_the_runs_trained_alone(tmp_path, configs):
    """PGD runs of other radii, steps, seeds and warm-ups, or standard-training runs one of which
    clips its spectral norms each epoch (a hook that changes the weights), their last batch partial
    (120 images in batches of 50), trained as one stack through the store: each run's history,
    checkpoint, metrics and momentum are those of the run trained alone, to fp32 rounding;
    machine.json records the stack."""
    together = runs.train_stacked(configs, tmp_path / "stack", device="cpu")
    alone = [runs.get_or_train(c, tmp_path / "alone", device="cpu", progress=False) for c in configs]
    for a, b in zip(alone, together):
        assert b.trained_from == 0 and b.path.name == a.path.name
        assert [row["stacked_runs"] for row in b.history] == [len(configs)] * 3
        assert [row.keys() - {"stacked_runs", "stack_seconds"} for row in b.history] == [row.keys() for row in a.history]
        assert all(row["seconds"] == pytest.approx(row["stack_seconds"] / len(configs)) for row in b.history)
        for row_a, row_b in zip(a.history, b.history):
            assert row_b["lr"] == row_a["lr"]
            assert row_b["train_input_loss"] == pytest.approx(row_a["train_input_loss"], rel=1e-4)
            assert row_b["train_input_acc"] == pytest.approx(row_a["train_input_acc"], abs=100 / 120 + 1e-9)
        torch.testing.assert_close(weights(b), weights(a), rtol=1e-3, atol=1e-5)
        momentum_a, momentum_b = (runs.load_checkpoint(r.path)["optimizer"]["state"] for r in (a, b))
        assert momentum_b.keys() == momentum_a.keys()
        torch.testing.assert_close(momentum_b, momentum_a, rtol=1e-3, atol=1e-5)
        assert abs(b.metrics["test_acc"] - a.metrics["test_acc"]) <= 100 / 60 + 1e-9
        assert b.metrics["test_loss"] == pytest.approx(a.metrics["test_loss"], rel=1e-3)
        assert json.loads((b.path / "machine.json").read_text())["attempts"][-1]["stacked_runs"] == len(configs)
    assert runs.train_stacked(configs, tmp_path / "stack", device="cpu")[0].trained_from is None  # found


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_a_graphed_stack_through_the_store_trains_like_the_eager_stack(tmp_path, device):
    """`arreg prepare -p stack=K` on a GPU: the stack's step as one CUDA graph per epoch, with
    channels_last, trains each run like the eager stack, to fp32 rounding; the graph was replayed."""
    configs = [dataclasses.replace(c, n_train=420) for c in SWEEP]  # 8 full batches: 2 warm up, 1 captures
    eager = runs.train_stacked(configs, tmp_path / "eager", device=device)
    graphed = runs.train_stacked(configs, tmp_path / "graphed", device=device, channels_last=True, cuda_graphs=True)
    for a, b in zip(eager, graphed):
        assert all(row["cuda_graph"] for row in b.history)
        for key, value in weights(a).items():
            scale = value.abs().max().clamp_min(1e-3)
            assert ((weights(b)[key] - value).abs().max() / scale).item() <= 1e-3, key


def test_an_interrupted_stack_resumes_to_exactly_the_uninterrupted_stack(tmp_path, monkeypatch):
    """A stack killed after its first epoch resumes, from its runs' own checkpoints, to the very
    weights of the stack never interrupted; a run of it resumes alone too, and says it changed."""
    reference = runs.train_stacked(SWEEP[:2], tmp_path / "a", device="cpu")
    real_epoch = stacked.train_epoch

    def die_in_second_epoch(stack, optimizer, data, configs, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(stack, optimizer, data, configs, epoch, *args)

    monkeypatch.setattr(stacked, "train_epoch", die_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        runs.train_stacked(SWEEP[:2], tmp_path / "b", device="cpu")
    monkeypatch.setattr(stacked, "train_epoch", real_epoch)
    assert [runs.checkpoint_status(runs.run_path(c, tmp_path / "b")) for c in SWEEP[:2]] == ["epoch 1"] * 2
    assert runs.stack_groups(SWEEP[:2], tmp_path / "b") == [SWEEP[:2]]
    resumed = runs.train_stacked(SWEEP[:2], tmp_path / "b", device="cpu")
    for a, b in zip(reference, resumed):
        assert b.trained_from == 1
        timings = {"seconds", "stack_seconds"}
        assert [{k: v for k, v in row.items() if k not in timings} for row in b.history] == \
            [{k: v for k, v in row.items() if k not in timings} for row in a.history]
        for key, value in weights(a).items():
            assert torch.equal(weights(b)[key], value), key

    with pytest.raises(KeyboardInterrupt):  # a run of a stack resumes alone from its checkpoint
        monkeypatch.setattr(stacked, "train_epoch", die_in_second_epoch)
        runs.train_stacked(SWEEP[:2], tmp_path / "c", device="cpu")
    monkeypatch.setattr(stacked, "train_epoch", real_epoch)
    alone = runs.get_or_train(SWEEP[0], tmp_path / "c", device="cpu", progress=False)
    assert alone.trained_from == 1 and "stacked_runs" not in alone.history[-1]
    attempts = json.loads((alone.path / "machine.json").read_text())["attempts"]
    assert [a.get("stacked_runs", 1) for a in attempts] == [2, 1]


def test_stack_groups_gather_the_runs_that_can_train_together(tmp_path):
    """Grouped by all but each run's own fields and by the epoch they stopped at, cut into even
    stacks of at most max_runs; finished runs, FGSM, batch-norm networks and lone runs are left out."""
    sweep = [tiny(eps=e, seed=s) for s in (0, 1, 2) for e in (4.0, 8.0, 16.0)]
    clean = [tiny(method="none", eps=0.0, seed=s) for s in (0, 1)]
    lone = [tiny(eps=8.0, batch_size=40), tiny(method="fgsm", eps=8.0), tiny(arch="wrn50_2", eps=8.0)]
    groups = runs.stack_groups(sweep + clean + lone, tmp_path, max_runs=4)
    assert [len(g) for g in groups] == [3, 3, 3, 2]  # 9 PGD runs: 3 stacks of 3, not 4 + 4 + 1
    assert groups[-1] == clean
    runs.get_or_train(sweep[0], tmp_path, device="cpu", progress=False)
    assert [len(g) for g in runs.stack_groups(sweep, tmp_path, max_runs=8)] == [8]
    assert runs.stack_groups(sweep, tmp_path, max_runs=1) == []


def test_runs_that_cannot_train_together_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="may differ only in eps.*differ in batch_size"):
        runs.train_stacked([tiny(), tiny(eps=4.0, batch_size=40)], tmp_path, device="cpu")
    with pytest.raises(ValueError, match="FGSM runs and networks with batch norm cannot be stacked"):
        runs.train_stacked([tiny(), tiny(method="fgsm")], tmp_path, device="cpu")
    with pytest.raises(ValueError, match="start from one epoch"):
        stacked.fit(SWEEP[:2], None, "cpu", [None] * 2, [None] * 2, [None] * 2, [[], [{}]])


def test_a_run_finished_or_held_elsewhere_is_left_out_of_the_stack(tmp_path):
    """Runs finished by another process are found, not trained again; a run another process holds
    is not waited for by the stack (the others train as one), then waited for alone."""
    runs.get_or_train(SWEEP[0], tmp_path, device="cpu", progress=False)
    found, *rest = runs.train_stacked(SWEEP, tmp_path, device="cpu")
    assert found.trained_from is None and "stacked_runs" not in found.history[0]
    assert [r.history[0]["stacked_runs"] for r in rest] == [2, 2]
    assert runs.train_stacked(SWEEP[:2], tmp_path, device="cpu")[1].trained_from is None  # all found: no stack

    others = [tiny(eps=e, seed=5) for e in (4.0, 8.0, 16.0)]
    held = runs.run_path(others[2], tmp_path)
    held.mkdir(parents=True)
    lock = runs.try_run_lock(held)
    try:
        with pytest.raises(runs.LockTimeoutError):
            runs.train_stacked(others, tmp_path, device="cpu", lock_timeout=0.2)
    finally:
        lock.release()
    assert [runs.load_run(runs.run_path(c, tmp_path)).history[0]["stacked_runs"] for c in others[:2]] == [2, 2]
    assert runs.load_run(held) is None


def test_a_diverged_run_is_the_only_one_of_its_stack_to_record_the_failure(tmp_path, monkeypatch):
    """A run whose loss is not finite stops the stack; the others keep that epoch and record nothing."""
    real_epoch = stacked.train_epoch

    def diverge(*args):
        rows = real_epoch(*args)
        rows[1]["train_input_loss"] = float("nan")
        return rows

    monkeypatch.setattr(stacked, "train_epoch", diverge)
    with pytest.raises(runs.TrainingFailedError, match="diverged"):
        runs.train_stacked(SWEEP, tmp_path, device="cpu")
    paths = [runs.run_path(c, tmp_path) for c in SWEEP]
    assert [(p / "failed.json").exists() for p in paths] == [False, True, False]
    assert [runs.checkpoint_status(p) for p in paths] == ["epoch 1", "none", "epoch 1"]


def test_a_diverged_run_stops_its_stack_after_the_others_saved_their_epoch(tmp_path):
    configs = SWEEP[:2]
    data = load_data("synthetic", n_train=120, n_test=60)
    states = [runs.resume_state(c, tmp_path / str(i), data, "cpu") for i, c in enumerate(configs)]
    saved = []

    def fails(*_):
        raise runs.TrainingFailedError("diverged")

    with pytest.raises(runs.TrainingFailedError, match="diverged"):
        stacked.fit(configs, data, "cpu", *map(list, zip(*states)),
                    saves=[fails, lambda model, opt, sched, history: saved.append(len(history))])
    assert saved == [1]


def test_prepare_trains_the_stackable_runs_as_stacks_before_its_jobs(tmp_path, capsys, monkeypatch):
    """`arreg prepare -p stack=8`: the AR sweep's PGD runs (eps 4/8/16, seeds 0 and 1) train as one
    stack and its standard-training runs as another, in the preparing process, and are analysed
    there, each reported; the executor gets the rest (here none). Without the option nothing is
    stacked."""
    from arreg_core import experiments
    from arreg_core.profiles import load_profile

    from arreg_core import analysis

    smoke = load_profile("smoke", n_train=100, n_test=50, epochs=1, stack=8)
    seen, analysed = [], []
    monkeypatch.setattr(analysis, "analyze", lambda run, pieces, **kw: analysed.append((run.path.name, pieces)))

    class Recorder:  # the executor: records the jobs, trains nothing
        def map(self, jobs, progress=None):
            seen.extend(jobs)
            progress.close()
            return [{"run": job.name} for job in jobs]

    experiments.prepare_profile(smoke, runs_dir=tmp_path, executor=Recorder(), experiments=("ar_sweep",))
    finished = [runs.load_run(runs.run_path(c, tmp_path)) for c in smoke.configs["ar_sweep"]]
    assert all(finished) and len(finished) == 8
    assert sorted(r.history[0]["stacked_runs"] for r in finished) == [2, 2] + [6] * 6
    assert seen == [] and capsys.readouterr().out.count("trained in a stack of") == 8
    assert sorted(name for name, _ in analysed) == sorted(r.path.name for r in finished)
    assert all(set(pieces) <= set(experiments.ANALYSED["ar_sweep"]) and pieces for _, pieces in analysed)
    smoke = load_profile("smoke", n_train=100, n_test=50, epochs=1, stack=8, eps=[0, 4, 8, 16, 2])
    experiments.prepare_profile(smoke, runs_dir=tmp_path, executor=Recorder(), experiments=("ar_sweep",))
    assert sorted(job.config.eps for job in seen) == [0, 0, 4, 4, 8, 8, 16, 16]  # finished: jobs that find them
    assert [r.history[0]["stacked_runs"] for r in (runs.load_run(runs.run_path(c, tmp_path))
                                                   for c in smoke.configs["ar_sweep"]) if r.config.eps == 2] == [2, 2]
    assert all("stack" not in job.execution for job in seen)

    plain = load_profile("smoke", n_train=100, n_test=50, epochs=1)
    experiments.prepare_profile(plain, runs_dir=tmp_path / "plain", executor=Recorder(), experiments=("ar_sweep",))
    assert not any(runs.load_run(runs.run_path(c, tmp_path / "plain")) for c in plain.configs["ar_sweep"])


def test_a_notebook_with_the_stack_option_trains_its_missing_runs_as_stacks(tmp_path):
    """`Experiments.runs` (a notebook's table, training what is missing) stacks like `arreg prepare`."""
    from arreg_core.experiments import Experiments

    ex = Experiments.from_parameters("smoke", runs_dir=tmp_path, device="cpu", n_train=100, n_test=50, epochs=1,
                                     eps=[0, 4], stack=4)
    table = ex.runs("ar_sweep")
    assert len(table) == 4
    assert [runs.load_run(runs.run_path(c, tmp_path)).history[0]["stacked_runs"] for c in ex.configs("ar_sweep")] \
        == [2, 2, 2, 2]
