import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from arreg_core import runs
from arreg_core.runs import CorruptCheckpointError, get_or_train, list_runs, load_checkpoint, run_key, run_path
from arreg_core.train import TrainConfig


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", arch="resnet8", n_train=200, n_test=100, epochs=4, batch_size=50,
                milestones=(2,), method="pgd", eps=8, attack_steps=2, attack_step=4)
    base = {**base, **kw}
    base["milestones"] = tuple(m for m in base["milestones"] if m < base["epochs"])
    return TrainConfig(**base)


class Interrupt(Exception):
    pass


def test_run_key_is_stable_and_config_sensitive():
    assert run_key(tiny()) == run_key(tiny())
    assert run_key(tiny()) != run_key(tiny(eps=4))
    assert run_key(tiny()) != run_key(tiny(seed=1))
    assert len(run_key(tiny())) == 12


def test_second_call_trains_nothing(tmp_path, monkeypatch):
    first = get_or_train(tiny(epochs=1), tmp_path, device="cpu", progress=False)
    assert first.metrics["epochs_trained"] == 1 and len(first.history) == 1
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("a stored run was trained again"))
    second = get_or_train(tiny(epochs=1), tmp_path, device="cpu", progress=False)
    assert second.metrics == first.metrics and second.path == first.path
    assert set(json.loads((first.path / "config.json").read_text())) >= {"eps", "method", "arch"}
    table = list_runs(tmp_path)
    assert list(table["status"]) == ["done"] and table["eps"].iloc[0] == 8


def test_interrupted_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path, monkeypatch):
    config = tiny()
    reference = get_or_train(config, tmp_path / "a", device="cpu", progress=False)

    real_save = runs.save_checkpoint

    def save_then_die(path, model, optimizer, scheduler, history):
        real_save(path, model, optimizer, scheduler, history)
        if len(history) == 2:
            raise Interrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupt):
        get_or_train(config, tmp_path / "b", device="cpu", progress=False)
    path_b = run_path(config, tmp_path / "b")
    assert json.loads((path_b / "checkpoint.json").read_text())["epoch"] == 2
    assert not (path_b / "metrics.json").exists()
    monkeypatch.setattr(runs, "save_checkpoint", real_save)
    resumed = get_or_train(config, tmp_path / "b", device="cpu", progress=False)

    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    a = load_checkpoint(reference.path)["model"]
    b = load_checkpoint(resumed.path)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["test_loss"] == reference.metrics["test_loss"]


def test_corrupted_checkpoint_is_reported_not_used(tmp_path, monkeypatch):
    config = tiny(epochs=2)

    real_save = runs.save_checkpoint

    def die_after_first(path, *state):
        real_save(path, *state)
        raise Interrupt

    monkeypatch.setattr(runs, "save_checkpoint", die_after_first)
    with pytest.raises(Interrupt):
        get_or_train(config, tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(runs, "save_checkpoint", real_save)

    ckpt = run_path(config, tmp_path) / "checkpoint-0001.pt"
    payload = bytearray(ckpt.read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # one flipped byte inside the tensors
    ckpt.write_bytes(bytes(payload))
    with pytest.raises(CorruptCheckpointError, match="--retrain"):
        get_or_train(config, tmp_path, device="cpu", progress=False)
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(ckpt.parent)


def test_checkpoint_without_record_is_an_unfinished_write(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "checkpoint.pt").write_bytes(b"half a checkpoint")
    assert load_checkpoint(path) is None


def test_checkpoints_hold_only_tensors_and_plain_data(tmp_path):
    run = get_or_train(tiny(epochs=1), tmp_path, device="cpu", progress=False)
    # weights_only=True refuses pickled code: loading at all proves the format is safe
    torch.load(run.path / json.loads((run.path / "checkpoint.json").read_text())["file"], weights_only=True)
    model = run.load_model("cpu")
    assert not model.training and model.fc.out_features == 10


def _train_in_process(runs_dir, log):
    real_fit = runs.fit

    def logged_fit(*a, **k):
        with open(log, "a") as f:
            f.write("trained\n")
        return real_fit(*a, **k)

    runs.fit = logged_fit
    torch.set_num_threads(1)
    return get_or_train(tiny(epochs=1), runs_dir, device="cpu", progress=False).metrics["test_loss"]


def test_two_processes_never_train_the_same_run_twice(tmp_path):
    log = tmp_path / "log"
    with mp.get_context("spawn").Pool(2) as pool:
        losses = pool.starmap(_train_in_process, [(tmp_path / "runs", log)] * 2)
    assert losses[0] == losses[1]
    assert log.read_text().splitlines() == ["trained"]
