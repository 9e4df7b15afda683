import json
import os
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


class NotATensor:
    """A class torch.load(weights_only=True) refuses to unpickle."""


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


# ----------------------------------------------------------------------------- keys

def small(**kw) -> TrainConfig:
    """tiny, cheaper: for the tests of faults, where the training itself does not matter."""
    return tiny(**{"n_train": 100, "n_test": 50, "attack_steps": 1, "attack_step": 8, **kw})


def test_how_a_number_is_written_does_not_change_the_run():
    assert run_key(tiny(eps=8)) == run_key(tiny(eps=8.0))
    assert run_key(tiny(spectral_norm=1)) == run_key(tiny(spectral_norm=1.0))
    assert run_key(tiny(lr=0.05)) != run_key(tiny(lr=0.5))
    # a field at its KEY_DEFAULTS_OMITTED default is left out of the hash (keys stay when a field is added)
    fake = lambda **extra: type("C", (), {"to_dict": lambda self: {"eps": 8.0, "milestones": (2,), **extra}})()
    assert runs.canonical_config(fake(precision="fp32")) == runs.canonical_config(fake()) == {"eps": 8, "milestones": [2]}
    assert runs.canonical_config(fake(precision="bf16"))["precision"] == "bf16"


def test_a_flag_spelling_of_a_stored_run_trains_nothing(tmp_path, monkeypatch):
    get_or_train(small(epochs=1, eps=8), tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("a stored run was trained again"))
    assert get_or_train(small(epochs=1, eps=8.0), tmp_path, device="cpu", progress=False).metrics["epochs_trained"] == 1


def test_runs_under_the_old_key_are_migrated_with_their_files(tmp_path, monkeypatch):
    config = small(epochs=1, attack_step=8.0)
    run = get_or_train(config, tmp_path, device="cpu", progress=False)
    (run.path / "analysis").mkdir()
    (run.path / "analysis" / "margins-x.json").write_text("{}")
    fields = json.loads((run.path / "config.json").read_text())
    old = run.path.with_name(run.path.name.rsplit("-", 1)[0] + "-" + runs._legacy_key(fields))
    assert old != run.path  # attack_step 8.0 hashed differently from 8 before canonical keys
    run.path.rename(old)
    with pytest.raises(runs.BrokenRunError, match="arreg runs --migrate"):
        runs.load_run(old)
    assert runs.migrate_keys(tmp_path) == [(old.name, run.path.name)]
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("a migrated run was trained again"))
    assert get_or_train(config, tmp_path, device="cpu", progress=False).path == run.path
    assert (run.path / "analysis" / "margins-x.json").exists()


def test_every_committed_run_is_found_under_its_key():
    """The committed stores: each directory's config.json hashes to the key in its name and its
    metrics are complete, or (a gpu-tier run a lent session left unfinished) its checkpoint is there
    to resume from (tests/test_experiments.py checks the notebooks find every run they read)."""
    root = Path(__file__).resolve().parents[1] / "results"
    dirs = [c.parent for c in root.glob("*/runs/*/config.json")]
    assert dirs
    for path in dirs:
        finished = runs.load_run(path) is not None
        assert finished or (path.parent.parent.name == "gpu" and load_checkpoint(path) is not None), path
        assert run_path(runs.stored_config(path), path.parent) == path


# ----------------------------------------------------------------------------- kills and faults

KILL_SCRIPT = r"""
import os, signal, sys, torch
torch.set_num_threads(int(sys.argv[4]))
from arreg_core import runs
from arreg_core.train import TrainConfig
dst, nth, when = sys.argv[2], int(sys.argv[3]), sys.argv[5]
real_replace, seen = os.replace, []
def replace(src, target):  # kill -9 at the chosen instant of the chosen write
    if os.path.basename(target) == dst:
        seen.append(target)
        if len(seen) == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, target)
    if len(seen) == nth and when == "after" and os.path.basename(target) == dst:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
config = TrainConfig(**eval(sys.argv[6]))
runs.get_or_train(config, sys.argv[1], device="cpu", progress=False)
"""


def _kill_config():
    return dict(dataset="synthetic", arch="resnet8", n_train=100, n_test=50, epochs=3, batch_size=50,
                milestones=(2,), method="pgd", eps=8, attack_steps=1, attack_step=8)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return get_or_train(TrainConfig(**_kill_config()), tmp_path_factory.mktemp("ref"), device="cpu", progress=False)


@pytest.mark.parametrize("dst, nth, when", [
    ("checkpoint-0002.pt", 1, "before"),  # inside the checkpoint's write: a temp file is left behind
    ("checkpoint.json", 2, "before"),     # between the checkpoint file and its record (the old code's fatal window)
    ("checkpoint.json", 2, "after"),      # between the record and history.json
    ("history.json", 2, "after"),         # before the old checkpoint file is removed
    ("metrics.json", 1, "before"),        # after the last epoch, before the metrics
])
def test_kill_9_at_any_instant_resumes_from_the_last_finished_epoch(tmp_path, uninterrupted, dst, nth, when):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), dst, str(nth), str(torch.get_num_threads()),
                           when, repr(_kill_config())], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    path = run_path(TrainConfig(**_kill_config()), tmp_path)
    resumed = get_or_train(TrainConfig(**_kill_config()), tmp_path, device="cpu", progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    a, b = load_checkpoint(uninterrupted.path)["model"], load_checkpoint(resumed.path)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["test_loss"] == uninterrupted.metrics["test_loss"]
    left = sorted(p.name for p in path.iterdir())
    assert left == [".lock", "checkpoint-0003.pt", "checkpoint.json", "config.json", "history.json", "machine.json",
                    "metrics.json"]


def test_a_full_disk_stops_the_run_and_costs_at_most_the_epoch_in_progress(tmp_path, monkeypatch):
    import errno

    config = small(epochs=3)
    real_save = runs.save_checkpoint

    def disk_full_at_epoch_2(path, *state):
        if len(state[-1]) == 2:
            monkeypatch.setattr(runs.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        real_save(path, *state)

    monkeypatch.setattr(runs, "save_checkpoint", disk_full_at_epoch_2)
    with pytest.raises(OSError, match="No space left"):
        get_or_train(config, tmp_path, device="cpu", progress=False)
    monkeypatch.undo()
    path = run_path(config, tmp_path)
    assert json.loads((path / "checkpoint.json").read_text())["epoch"] == 1
    assert not list(path.glob(".*.tmp"))
    assert get_or_train(config, tmp_path, device="cpu", progress=False).metrics["epochs_trained"] == 3


# ----------------------------------------------------------------------------- broken runs

def test_retrain_gives_a_finished_run_its_checkpoint_back(tmp_path, monkeypatch):
    config = small(epochs=1)
    run = get_or_train(config, tmp_path, device="cpu", progress=False)
    record = json.loads((run.path / "checkpoint.json").read_text())
    (run.path / record["file"]).unlink()
    assert list_runs(tmp_path)["checkpoint"].tolist() == ["corrupt"]
    with pytest.raises(CorruptCheckpointError, match="--retrain"):
        run.load_model("cpu")
    assert get_or_train(config, tmp_path, device="cpu", progress=False).path == run.path  # finished: nothing trained
    again = get_or_train(config, tmp_path, device="cpu", progress=False, retrain=True)
    assert again.metrics["test_loss"] == run.metrics["test_loss"]  # the same training, bit for bit
    assert again.load_model("cpu") is not None
    assert list_runs(tmp_path)["checkpoint"].tolist() == ["epoch 1"]
    (run.path / "checkpoint.json").unlink()
    assert list_runs(tmp_path)["checkpoint"].tolist() == ["none"]


def test_edited_config_or_metrics_are_refused_not_used(tmp_path):
    config = small(epochs=1)
    run = get_or_train(config, tmp_path, device="cpu", progress=False)
    cfg, metrics = run.path / "config.json", run.path / "metrics.json"
    original = cfg.read_text()
    cfg.write_text(original.replace('"eps": 8', '"eps": 16'))
    with pytest.raises(runs.BrokenRunError, match="does not hash to"):
        runs.load_run(run.path)
    with pytest.raises(runs.BrokenRunError):
        get_or_train(config, tmp_path, device="cpu", progress=False)
    assert list_runs(tmp_path)["status"].iloc[0].startswith("broken")
    cfg.write_text(original)
    full = metrics.read_text()
    metrics.write_text("{}")
    with pytest.raises(runs.BrokenRunError, match="lacks train_acc"):
        runs.load_run(run.path)
    metrics.write_text(full[: len(full) // 2])
    with pytest.raises(runs.BrokenRunError, match="not valid JSON"):
        runs.load_run(run.path)


def test_a_checkpoint_with_pickled_code_is_not_a_checkpoint_of_ours(tmp_path):
    import hashlib

    path = tmp_path / "run"
    path.mkdir()
    buf = __import__("io").BytesIO()
    torch.save({"model": NotATensor()}, buf)
    (path / "checkpoint-0001.pt").write_bytes(buf.getvalue())
    (path / "checkpoint.json").write_text(json.dumps(
        {"epoch": 1, "file": "checkpoint-0001.pt", "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint this project wrote") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value) and "\n" not in str(err.value)


def test_nan_loss_stops_the_run_and_marks_it_failed(tmp_path, monkeypatch):
    from arreg_core import train

    real_epoch = train.train_epoch

    def nan_at_epoch_2(*a, **k):
        row = real_epoch(*a, **k)
        return {**row, "train_input_loss": float("nan")} if row["epoch"] == 2 else row

    monkeypatch.setattr(train, "train_epoch", nan_at_epoch_2)
    with pytest.raises(runs.TrainingFailedError, match="training loss is nan at epoch 2") as err:
        get_or_train(small(epochs=3), tmp_path, device="cpu", progress=False)
    assert "\n" not in str(err.value)
    path = run_path(small(epochs=3), tmp_path)
    assert json.loads((path / "checkpoint.json").read_text())["epoch"] == 1  # stopped at that epoch
    status = list_runs(tmp_path)["status"].iloc[0]
    assert status.startswith("failed: TrainingFailedError") and "nan" in status


def test_a_bad_device_leaves_no_run_directory(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        get_or_train(small(epochs=1), tmp_path, device="tpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            get_or_train(small(epochs=1), tmp_path, device="cuda", progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- housekeeping

def test_store_files_are_readable_by_all(tmp_path):
    old = os.umask(0o022)
    try:
        run = get_or_train(small(epochs=1), tmp_path, device="cpu", progress=False)
    finally:
        os.umask(old)
    for p in run.path.iterdir():
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p.name


def test_a_waiting_process_says_so_once_and_gives_up_after_the_timeout(tmp_path, capsys):
    config = small(epochs=1)
    path = run_path(config, tmp_path)
    path.mkdir(parents=True)
    with runs.run_lock(path):
        assert (path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(runs.LockTimeoutError, match=f"still locked by pid {os.getpid()} after 0.5 s"):
            get_or_train(config, tmp_path, device="cpu", progress=False, lock_timeout=0.5)
    err = capsys.readouterr().err
    assert err.count("waiting for") == 1 and f"waiting for {path.name}, locked by pid {os.getpid()}" in err


# ----------------------------------------------------------------------------- nothing outside the store

def test_a_run_directory_linked_outside_the_store_is_refused_untouched(tmp_path):
    config = small(epochs=1)
    outside = tmp_path / "outside" / "rundir"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text(json.dumps(config.to_dict()))
    (outside / "checkpoint-0007.pt").write_text("u\n")
    (outside / ".notes.tmp").write_text("u\n")
    store = tmp_path / "s5"
    store.mkdir()
    link = store / runs.run_name(config)
    link.symlink_to(outside)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    with pytest.raises(runs.RunError, match="symbolic link") as err:
        get_or_train(config, store, device="cpu", progress=False)
    assert str(link) in str(err.value) and "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before  # nothing deleted, nothing written
    (outside / "metrics.json").write_text(json.dumps({m: 1.0 for m in runs.REQUIRED_METRICS}))
    with pytest.raises(runs.RunError, match="symbolic link"):
        runs.load_run(link)  # and nothing loaded


def test_a_checkpoint_record_naming_a_file_outside_the_run_is_refused(tmp_path):
    run = get_or_train(small(epochs=1), tmp_path / "a", device="cpu", progress=False)
    record = json.loads((run.path / "checkpoint.json").read_text())
    elsewhere = tmp_path / "elsewhere.pt"
    elsewhere.write_bytes((run.path / record["file"]).read_bytes())  # a valid checkpoint, its sha256 matches
    for name in (str(elsewhere), "../../elsewhere.pt"):
        (run.path / "checkpoint.json").write_text(json.dumps({**record, "file": name}))
        with pytest.raises(CorruptCheckpointError, match="not a checkpoint file of this run"):
            load_checkpoint(run.path)
        runs.remove_partial_writes(run.path)
    assert elsewhere.exists()


# ----------------------------------------------------------------------------- threads and devices

def test_a_resume_under_another_thread_count_says_so_once_and_is_recorded(tmp_path, monkeypatch, capsys):
    threads = torch.get_num_threads()
    real_save = runs.save_checkpoint

    def interrupted_then_resumed(config, first, second):
        def die_after_first(path, *state):
            real_save(path, *state)
            raise Interrupt

        monkeypatch.setattr(runs, "save_checkpoint", die_after_first)
        torch.set_num_threads(first)
        with pytest.raises(Interrupt):
            get_or_train(config, tmp_path, device="cpu", progress=False)
        monkeypatch.setattr(runs, "save_checkpoint", real_save)
        torch.set_num_threads(second)
        capsys.readouterr()
        run = get_or_train(config, tmp_path, device="cpu", progress=False)
        return run, capsys.readouterr().err.strip().splitlines()

    try:
        run, said = interrupted_then_resumed(small(epochs=2), 1, 2)
        same, silent = interrupted_then_resumed(small(epochs=2, seed=1), 1, 1)
    finally:
        torch.set_num_threads(threads)
    assert len(said) == 1 and "1 thread" in said[0] and "2 threads" in said[0] and "epoch 1" in said[0], said
    assert run.path.name in said[0] and "bit" in said[0]
    attempts = json.loads((run.path / "machine.json").read_text())["attempts"]
    assert [(a["from_epoch"], a["threads"], a["device"]) for a in attempts] == [(0, 1, "cpu"), (1, 2, "cpu")]
    assert all(a["device_name"] for a in attempts)
    assert silent == [] and len(json.loads((same.path / "machine.json").read_text())["attempts"]) == 2
    assert runs.run_key(run.config) == runs.run_key(small(epochs=2))  # the key names the config, not the machine
