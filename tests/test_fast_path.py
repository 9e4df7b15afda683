"""The fast training path (bf16 autocast, channels_last, torch.compile) on every device present:
the CPU always, CUDA where there is one (benchmarks/gpu_check.sh runs these there)."""
import pytest
import torch

from arreg_core.data import load_data
from arreg_core.device import autocast, native_bf16, resolve_precision
from arreg_core.evaluate import evaluate
from arreg_core.runs import get_or_train, load_checkpoint, run_key
from arreg_core.train import TrainConfig, fit

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA")])]


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", arch="resnet8", n_train=200, n_test=100, epochs=2, batch_size=50,
                milestones=(1,), method="pgd", eps=8, attack_steps=2, attack_step=4, lr=0.05)
    base = {**base, **kw}
    base["milestones"] = tuple(m for m in base["milestones"] if m < base["epochs"])  # TrainConfig refuses others
    return TrainConfig(**base)


def test_precision_is_part_of_the_key_and_fp32_keeps_the_old_one():
    assert run_key(tiny(precision="bf16")) != run_key(tiny())
    assert run_key(tiny(precision="fp32")) == run_key(tiny())
    with pytest.raises(ValueError, match="resolve_precision"):
        tiny(precision="auto")
    with pytest.raises(ValueError, match="unknown precision"):
        tiny(precision="fp16")


def test_auto_precision_follows_the_hardware(monkeypatch):
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # bf16 emulated: measured 2.6x slower (README)
    assert not native_bf16("cpu") and resolve_precision("auto", "cpu") == "fp32"


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocasts_the_forward_passes_but_keeps_fp32_master_weights(device):
    """Under bf16 the convolutions of both the attack and the update see bf16 activations; the
    weights, the optimizer's momentum, the loss and the attack's input gradients stay fp32."""
    config = tiny(precision="bf16", epochs=1)
    data = load_data("synthetic", n_train=100, n_test=50)
    seen = []
    from arreg_core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet8", 10)
    model.conv1.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    model, history = fit(config, data, device, model=model, progress=False)
    assert set(seen) == {torch.bfloat16}
    assert len(seen) == 2 * (config.attack_steps + 1)  # per batch: the attack's steps and the update
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.isfinite(torch.tensor(history[-1]["train_input_loss"]))
    with autocast("fp32", torch.device(device)):
        assert not torch.is_autocast_enabled(device)


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_of_a_bf16_run_is_fp32(device, tmp_path):
    run = get_or_train(tiny(precision="bf16"), tmp_path, device=device, progress=False)
    model = run.load_model(device)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    data = load_data("synthetic", n_train=200, n_test=100)
    assert evaluate(model, data, device=device) == pytest.approx(
        {k: v for k, v in run.metrics.items() if k not in ("epochs_trained", "train_seconds")}, abs=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_and_bf16_track_the_plain_run(device):
    """channels_last changes only the order of the arithmetic: same losses to rounding; bf16 stays
    within bf16's precision of the fp32 run over a short training."""
    data = load_data("synthetic", n_train=200, n_test=100)
    plain = fit(tiny(), data, device, progress=False)[1]
    last = fit(tiny(), data, device, channels_last=True, progress=False)[1]
    bf16 = fit(tiny(precision="bf16"), data, device, channels_last=True, progress=False)[1]
    for a, b in zip(plain, last):
        assert a["train_input_loss"] == pytest.approx(b["train_input_loss"], rel=1e-4)
    for a, b in zip(plain, bf16):
        assert a["train_input_loss"] == pytest.approx(b["train_input_loss"], rel=0.05)


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_training_resumes_and_saves_plain_weights(device, tmp_path):
    """torch.compile wraps only the forward passes: checkpoints hold the plain network's state
    (no `_orig_mod.` prefix), so a compiled run loads and resumes without compiling."""
    config = tiny(precision="bf16", epochs=1)
    run = get_or_train(config, tmp_path, device=device, compile=True, channels_last=True, progress=False)
    state = load_checkpoint(run.path)["model"]
    assert not any(k.startswith("_orig_mod") for k in state)
    assert run.metrics["epochs_trained"] == 1 and torch.isfinite(torch.tensor(run.metrics["train_loss"]))


CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_cuda_graphs_track_the_eager_run(device):
    """compile="reduce-overhead" (CUDA graphs of the compiled passes, for a launch-bound GPU step)
    trains like the eager step: same losses to rounding, a partial last batch included."""
    data = load_data("synthetic", n_train=230, n_test=100)
    eager = fit(tiny(), data, device, channels_last=True, progress=False)[1]
    graphed = fit(tiny(), data, device, channels_last=True, compile="reduce-overhead", progress=False)[1]
    for a, b in zip(eager, graphed):
        assert a["train_input_loss"] == pytest.approx(b["train_input_loss"], rel=1e-3)


@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 2e-2)])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_graphed_step_trains_like_the_eager_step(device, precision, rel):
    """cuda_graphs=True (the whole step, attack + update, as one CUDA graph per epoch) trains like
    the eager step: per-epoch losses and the final weights agree to the precision's rounding, a
    partial last batch included (eager), and the graph was captured and replayed in every epoch."""
    data = load_data("synthetic", n_train=230, n_test=100)  # 4 full batches of 50 and one of 30
    config = tiny(precision=precision, epochs=3, milestones=(2,))
    eager_model, eager = fit(config, data, device, channels_last=True, progress=False)
    graph_model, graphed = fit(config, data, device, channels_last=True, cuda_graphs=True, progress=False)
    assert all(row["cuda_graph"] for row in graphed) and "cuda_graph" not in eager[0]
    for a, b in zip(eager, graphed):
        assert a["train_input_loss"] == pytest.approx(b["train_input_loss"], rel=rel)
        assert a["train_input_acc"] == pytest.approx(b["train_input_acc"], abs=100 * 3 / 230)
    for (name, a), b in zip(eager_model.state_dict().items(), graph_model.state_dict().values()):
        scale = a.abs().max().clamp_min(1e-3)
        assert ((a - b).abs().max() / scale).item() <= rel, name


def test_graphs_and_compile_are_one_or_the_other():
    data = load_data("synthetic", n_train=20, n_test=10)
    with pytest.raises(ValueError, match="choose one"):
        fit(tiny(epochs=1, batch_size=10), data, "cpu", compile=True, cuda_graphs=True, progress=False)


def test_cuda_graphs_change_nothing_off_cuda():
    """On the CPU the option is accepted and the step is the eager one, bit for bit."""
    data = load_data("synthetic", n_train=60, n_test=10)
    config = tiny(epochs=1, batch_size=20)
    plain = fit(config, data, "cpu", progress=False)
    graphs = fit(config, data, "cpu", cuda_graphs=True, progress=False)
    assert plain[1][0]["train_input_loss"] == graphs[1][0]["train_input_loss"]
    assert all(torch.equal(a, b) for a, b in zip(plain[0].state_dict().values(), graphs[0].state_dict().values()))


def test_compile_modes_are_checked():
    from arreg_core.train import compiled

    model = torch.nn.Linear(2, 2)
    assert compiled(model, False) is model
    with pytest.raises(ValueError, match="reduce-overhead"):
        compiled(model, "fast")
