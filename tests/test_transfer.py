"""Moving a store between machines in bounded parts (arreg_core.transfer): what a lent GPU
session packs comes back whole, verified, and its unfinished runs resume here exactly."""
import hashlib
import json

import pytest
import torch

from arreg_core import manifest, runs
from arreg_core.cli import main
from arreg_core.runs import get_or_train, load_checkpoint, run_path
from arreg_core.train import TrainConfig
from arreg_core.transfer import TransferError, import_parts, pack_store, store_files


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", arch="resnet8", n_train=120, n_test=60, epochs=3, batch_size=40,
                milestones=(2,), method="pgd", eps=8, attack_steps=2, attack_step=4)
    return TrainConfig(**{**base, **kw})


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with a finished run (analysed) and one interrupted after epoch 1 of 3; and the
    uninterrupted twin of the latter, trained elsewhere, to compare the resumed run with."""
    from arreg_core.analysis import analyze

    root = tmp_path_factory.mktemp("gpu")
    done = get_or_train(tiny(eps=0, method="none"), root / "runs", device="cpu", progress=False)
    analyze(done, pieces=("margins",), device="cpu")
    reference = get_or_train(tiny(), root / "reference", device="cpu", progress=False)
    real_save = runs.save_checkpoint

    def save_then_die(path, model, optimizer, scheduler, history):
        real_save(path, model, optimizer, scheduler, history)
        raise Interrupt

    runs.save_checkpoint = save_then_die
    try:
        with pytest.raises(Interrupt):
            get_or_train(tiny(), root / "runs", device="cpu", progress=False)
    finally:
        runs.save_checkpoint = real_save
    (run_path(tiny(), root / "runs") / ".lock").touch()
    (root / "runs" / runs.PREPARE_LOG).write_text('{"event": "start"}\n')
    return root, reference


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in (".lock", "failed.json")}


def test_a_packed_store_comes_back_whole_and_its_unfinished_run_resumes_exactly(store, tmp_path):
    root, reference = store
    parts = pack_store(root / "runs", tmp_path / "out" / "gpu-runs", part_mib=0.1)
    assert len(parts) > 1 and all(p.stat().st_size <= 0.1 * 2**20 for p in parts)
    assert not any(".lock" in str(f) for f in store_files(root / "runs"))
    done = import_parts(reversed(parts), tmp_path / "here")  # any order: parts are numbered
    assert sorted(what for _, what in done) == ["added", "added"]
    assert digest(tmp_path / "here") == digest(root / "runs")
    resumed = get_or_train(tiny(), tmp_path / "here", device="cpu", progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    a, b = load_checkpoint(reference.path)["model"], load_checkpoint(resumed.path)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["test_loss"] == reference.metrics["test_loss"]
    again = import_parts(parts, tmp_path / "here")  # the store's resumed run is further along now
    assert dict(again) == {resumed.path.name: "kept", run_path(tiny(eps=0, method="none"), "x").name: "unchanged"}


def test_missing_or_damaged_parts_write_nothing(store, tmp_path):
    root, _ = store
    parts = pack_store(root / "runs", tmp_path / "gpu-runs", part_mib=0.1)
    with pytest.raises(TransferError, match="part\\(s\\) 00 missing"):
        import_parts(parts[1:], tmp_path / "here")
    with pytest.raises(TransferError, match="do not unpack"):
        import_parts(parts[:-1], tmp_path / "here")
    blob = bytearray(parts[0].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    parts[0].write_bytes(bytes(blob))
    with pytest.raises(TransferError):
        import_parts(parts, tmp_path / "here")
    assert not any((tmp_path / "here").iterdir())
    assert not list(tmp_path.glob(".arreg-import-*"))


def test_a_finished_run_that_differs_stops_the_import(store, tmp_path):
    root, _ = store
    parts = pack_store(root / "runs", tmp_path / "gpu-runs")
    import_parts(parts, tmp_path / "here")
    finished = run_path(tiny(eps=0, method="none"), tmp_path / "here")
    metrics = json.loads((finished / "metrics.json").read_text())
    (finished / "metrics.json").write_text(json.dumps({**metrics, "test_acc": metrics["test_acc"] + 1}))
    with pytest.raises(TransferError, match="cannot be trusted.*metrics.json does not match"):  # an edit
        import_parts(parts, tmp_path / "here")
    manifest.seal(tmp_path / "here")  # ... or another training of the same key, sealed
    with pytest.raises(TransferError, match="differ"):
        import_parts(parts, tmp_path / "here")


def test_the_commands_pack_and_import(store, tmp_path, capsys):
    root, _ = store
    assert main(["export-runs", "--runs-dir", str(root / "runs"), "--out", str(tmp_path / "p")]) == 0
    parts = sorted(str(p) for p in tmp_path.glob("p.part*"))
    assert main(["import-runs", *parts, "--runs-dir", str(tmp_path / "here")]) == 0
    assert capsys.readouterr().out.count("added") == 2
    assert main(["import-runs", str(tmp_path / "nothing.part00"), "--runs-dir", str(tmp_path / "here")]) == 2
    assert "arreg: error:" in capsys.readouterr().err
