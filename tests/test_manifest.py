"""The store's manifest: an edited number or artifact, or a corrupt file, stops `arreg runs`, the
book build and every reuse with one line naming the file; `arreg seal` accepts an intended change."""
import json
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pytest

from arreg_core import analysis, manifest, runs
from arreg_core.cli import main
from arreg_core.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = [ROOT / "results" / "cpu" / "runs", ROOT / "results" / "cpu-v1" / "runs"]


def one_line(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("arreg: error: "), err
    return err[0]


@pytest.fixture
def store_copy(tmp_path):
    """A copy of the committed `cpu` store (its metrics and artifacts, no checkpoints)."""
    copy = tmp_path / "runs"
    shutil.copytree(COMMITTED[0], copy)
    return copy


def first_run(store: Path) -> Path:
    return sorted(p.parent for p in store.glob("*/metrics.json"))[0]


def test_the_committed_stores_are_sealed():
    for store in COMMITTED:
        runs.verify_store(store)
        listed = set(json.loads((store / manifest.MANIFEST).read_text())["files"])
        on_disk = {p.relative_to(store).as_posix() for p in store.glob("*/*") if manifest.SEALED.match(p.name)}
        on_disk |= {p.relative_to(store).as_posix() for p in store.glob("*/analysis/*.npz")}
        assert listed == on_disk and len(listed) > 50


def test_an_edited_number_stops_runs_and_the_book_until_the_store_is_sealed(store_copy, capsys, monkeypatch):
    from arreg_core import book

    run = first_run(store_copy)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "test_acc": metrics["test_acc"] + 10}, indent=2))
    line = one_line(["runs", "--runs-dir", str(store_copy)], capsys)
    assert str(run / "metrics.json") in line and f"arreg seal --runs-dir {store_copy}" in line and "--retrain" in line

    class Stop(Exception):
        pass

    monkeypatch.setattr(book, "stage", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    monkeypatch.setenv("ARREG_RUNS", str(store_copy))
    line = one_line(["book", "--profile", "cpu", "--workers", "1"], capsys)
    assert str(run / "metrics.json") in line

    assert main(["seal", "--runs-dir", str(store_copy)]) == 0  # the change was intended
    assert "sealed" in capsys.readouterr().out
    assert main(["runs", "--runs-dir", str(store_copy)]) == 0
    assert f"{metrics['test_acc'] + 10:.3f}" in capsys.readouterr().out
    with pytest.raises(Stop):  # the book goes on to its pages
        book.build_book("cpu", workers=1)


def test_a_rewritten_artifact_stops_runs_and_the_book(store_copy, capsys, monkeypatch):
    npz = sorted(store_copy.glob("*/analysis/margins-*.npz"))[0]
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test_margin"] = arrays["test_margin"] + 1  # a valid .npz, other numbers
    np.savez_compressed(npz, **arrays)
    assert str(npz) in one_line(["runs", "--runs-dir", str(store_copy)], capsys)
    monkeypatch.setenv("ARREG_RUNS", str(store_copy))
    line = one_line(["book", "--profile", "cpu", "--workers", "1"], capsys)
    assert str(npz) in line and "arreg analyze" in line
    assert main(["seal", "--runs-dir", str(store_copy)]) == 0
    assert main(["runs", "--runs-dir", str(store_copy)]) == 0


def test_a_truncated_artifact_is_named_and_cannot_be_sealed(store_copy, capsys):
    npz = sorted(store_copy.glob("*/analysis/*.npz"))[0]
    npz.write_bytes(npz.read_bytes()[:1000])
    assert str(npz) in one_line(["runs", "--runs-dir", str(store_copy)], capsys)
    line = one_line(["seal", "--runs-dir", str(store_copy)], capsys)
    assert str(npz) in line and "truncated or corrupt" in line and "arreg analyze" in line


def small() -> TrainConfig:
    return TrainConfig(dataset="synthetic", arch="resnet8", n_train=100, n_test=50, epochs=1, batch_size=50,
                       milestones=(), method="none", eps=0)


@pytest.fixture
def analysed(tmp_path):
    run = runs.get_or_train(small(), tmp_path, device="cpu", progress=False)
    analysis.analyze(run, pieces=("margins",), device="cpu")
    return run.path, analysis.artifact_path(run.path, "margins")


@pytest.mark.parametrize("checkpoint", [True, False])
def test_an_artifact_is_never_reused_unchecked(analysed, checkpoint, capsys):
    path, npz = analysed
    if not checkpoint:  # as in the committed stores
        (path / "checkpoint.json").unlink()
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test_margin"] = arrays["test_margin"] * 2
    np.savez_compressed(npz, **arrays)
    with pytest.raises(manifest.TamperedError, match="does not match"):
        analysis.analyze(path, pieces=("margins",), device="cpu")
    with pytest.raises(manifest.TamperedError, match="does not match"):
        analysis.load_artifact(path, "margins")
    line = one_line(["analyze", str(path), "--pieces", "margins", "--device", "cpu"], capsys)
    assert str(npz) in line and f"arreg analyze {path}" in line


def test_a_corrupt_artifact_is_one_line_naming_it_even_when_sealed(analysed, capsys):
    path, npz = analysed
    payload = npz.read_bytes()[:-200]
    manifest.write_bytes(path, f"analysis/{npz.name}", payload)  # sealed as it is: the reader must still say so
    line = one_line(["analyze", str(path), "--pieces", "margins", "--device", "cpu"], capsys)
    assert str(npz) in line and "truncated or corrupt" in line and "unexpected" not in line


def test_an_edited_history_of_a_finished_run_is_refused(analysed):
    path, _ = analysed
    history = json.loads((path / "history.json").read_text())
    history[0]["train_input_loss"] = 0.0
    (path / "history.json").write_text(json.dumps(history))
    with pytest.raises(manifest.TamperedError, match="history.json"):
        runs.load_run(path)


def test_an_unsealed_store_says_how_to_seal_it(analysed, capsys):
    path, _ = analysed
    (path.parent / manifest.MANIFEST).unlink()
    line = one_line(["runs", "--runs-dir", str(path.parent)], capsys)
    assert "no manifest" in line and f"arreg seal --runs-dir {path.parent}" in line
    assert main(["seal", "--runs-dir", str(path.parent)]) == 0
    assert runs.load_run(path) is not None


def _write_many(store: str, worker: int) -> None:
    run = Path(store) / f"run-{worker}"
    run.mkdir(exist_ok=True)
    for i in range(40):
        manifest.write_bytes(run, f"analysis/piece-{i}.npz", f"{worker}-{i}".encode())


def test_parallel_writers_lose_no_entry(tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        pool.starmap(_write_many, [(str(tmp_path), w) for w in range(2)])
    files = json.loads((tmp_path / manifest.MANIFEST).read_text())["files"]
    assert len(files) == 80
    runs.verify_store(tmp_path)
