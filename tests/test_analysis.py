"""Analysis artifacts of a run: written, reloaded, recomputed only where a parameter changed."""

import shutil

import numpy as np
import pytest

from arreg_core import analysis
from arreg_core.analysis import COMPUTE, analyze, artifact_path, load_artifact
from arreg_core.evaluate import predict_logits
from arreg_core.margins import margin
from arreg_core.runs import get_or_train
from arreg_core.spectrum import layer_singular_values
from arreg_core.train import TrainConfig

SMALL = {"loss_variation": {"eps": [0, 2], "steps": 2}, "bound": {"n_examples": 6, "steps": 3, "bisect_steps": 2}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = TrainConfig(dataset="synthetic", arch="resnet8", n_train=200, n_test=100, epochs=1, milestones=(),
                         batch_size=50, method="none", eps=0)
    return get_or_train(config, tmp_path_factory.mktemp("runs"), device="cpu", progress=False)


@pytest.fixture
def counted(monkeypatch):
    calls = {piece: 0 for piece in COMPUTE}
    for piece, fn in list(COMPUTE.items()):
        def wrapper(ctx, p, fn=fn, piece=piece):
            calls[piece] += 1
            return fn(ctx, p)
        monkeypatch.setitem(COMPUTE, piece, wrapper)
    return calls


def test_artifacts_written_reloaded_and_reused(run, counted):
    shutil.rmtree(run.path / "analysis", ignore_errors=True)
    first = analyze(run, params=SMALL, device="cpu")
    assert set(first) == set(analysis.PIECES) and all(v["computed"] for v in first.values())
    assert counted == {p: 1 for p in analysis.PIECES}
    for piece, info in first.items():
        assert info["path"] == artifact_path(run.path, piece, SMALL.get(piece))
        assert info["path"].exists() and info["path"].with_suffix(".json").exists()
        assert info["path"].stat().st_size < 200_000

    again = analyze(run.path, params=SMALL, device="cpu")
    assert not any(v["computed"] for v in again.values()) and counted == {p: 1 for p in analysis.PIECES}
    assert again["bound"]["summary"] == first["bound"]["summary"]

    model = run.load_model("cpu")
    from arreg_core.data import load_data
    data = load_data("synthetic", n_train=200, n_test=100)
    m = load_artifact(run.path, "margins")
    logits = predict_logits(model, data.x_test, device="cpu")
    assert np.allclose(m["test_margin"], margin(logits, data.y_test).numpy(), atol=1e-5)
    assert np.array_equal(m["test_label"], data.y_test.numpy()) and m["train_margin"].shape == (200,)
    assert m["meta"]["summary"]["test"]["accuracy"] == pytest.approx((logits.argmax(1) == data.y_test).float().mean())

    s = load_artifact(run.path, "spectrum")
    layers = layer_singular_values(model, 32)
    assert np.allclose(s["std"], [r["std"] for r in layers]) and list(s["name"]) == [r["name"] for r in layers]
    third = s["values"][s["offsets"][2]:s["offsets"][3]]
    assert np.allclose(third, layers[2]["singular_values"].numpy(), rtol=2e-3, atol=1e-6)

    lv = load_artifact(run.path, "loss_variation", SMALL["loss_variation"])
    assert lv["values"].shape == (2, 100) and np.all(lv["values"][0] == 0) and lv["mean"][1] > 0

    b = load_artifact(run.path, "bound", SMALL["bound"])
    assert b["radius"].shape == (6,) and len(b["sigma_min"]) == len(layers) - 1
    assert b["meta"]["summary"]["n_examples"] == 6 and b["meta"]["params"]["steps"] == 3


def test_changed_param_recomputes_only_that_piece(run, counted):
    analyze(run, params=SMALL, device="cpu")
    before = {p: artifact_path(run.path, p, SMALL.get(p)).stat().st_mtime_ns for p in analysis.PIECES}
    counted.update({p: 0 for p in counted})
    changed = {**SMALL, "loss_variation": {**SMALL["loss_variation"], "eps": [1]}}
    out = analyze(run, params=changed, device="cpu")
    assert [p for p, v in out.items() if v["computed"]] == ["loss_variation"]
    assert counted == {"margins": 0, "spectrum": 0, "loss_variation": 1, "bound": 0}
    assert {p: artifact_path(run.path, p, SMALL.get(p)).stat().st_mtime_ns for p in analysis.PIECES} == before
    assert load_artifact(run.path, "loss_variation", changed["loss_variation"])["values"].shape == (1, 100)
    # batch size does not change results: not part of the key
    out = analyze(run, pieces=["margins"], params={"margins": {"batch_size": 7}}, device="cpu")
    assert not out["margins"]["computed"] and counted["margins"] == 0


def test_new_checkpoint_recomputes(run, counted, monkeypatch):
    analyze(run, pieces=["spectrum"], device="cpu")
    monkeypatch.setattr(analysis, "_checkpoint_sha", lambda path: "another checkpoint")
    assert analyze(run, pieces=["spectrum"], device="cpu")["spectrum"]["computed"]
    assert load_artifact(run.path, "spectrum")["meta"]["checkpoint_sha256"] == "another checkpoint"


def test_artifacts_load_without_the_checkpoint(run, tmp_path):
    analyze(run, pieces=["margins"], device="cpu")
    copy = tmp_path / "store" / run.path.name  # the run with its manifest, as committed: no checkpoint
    shutil.copytree(run.path / "analysis", copy / "analysis")
    shutil.copy(run.path.parent / "manifest.json", copy.parent)
    assert load_artifact(copy, "margins")["test_margin"].shape == (100,)
    with pytest.raises(FileNotFoundError, match="arreg analyze"):
        load_artifact(copy, "bound")


def test_bad_requests(run):
    with pytest.raises(ValueError, match="unknown analysis piece"):
        analyze(run, pieces=["margin"], device="cpu")
    with pytest.raises(ValueError, match="unknown params"):
        analyze(run, pieces=["bound"], params={"bound": {"radius": 3}}, device="cpu")
    with pytest.raises(ValueError, match="unknown pieces"):
        analyze(run, params={"bounds": {}}, device="cpu")
    with pytest.raises(FileNotFoundError):
        analyze(run.path / "nothing-here", device="cpu")


def test_std_difference_summary_by_hand():
    """Appendix B.2's grouping (spectrum.std_difference_summary), on hand-made stds."""
    from arreg_core.spectrum import std_difference_summary

    s = std_difference_summary([1.0, 0.5, 2.0, 0.3, 0.75], [0.5, 0.75, 1.0, 0.3, 0.25])
    assert s["decreased"] == {"count": 3, "sum": 2.0, "mean": 2.0 / 3}  # layers 0, 2, 4: std_a - std_b
    assert s["increased"] == {"count": 1, "sum": 0.25, "mean": 0.25}  # layer 1: std_b - std_a
    assert s["unchanged"] == 1
    # the paper's CIFAR-10 numbers: 41 layers decreased by 4.7465 in all, 14 increased by 0.4372
    a = np.r_[np.full(41, 1.0 + 4.7465 / 41), np.full(14, 1.0)]
    b = np.r_[np.full(41, 1.0), np.full(14, 1.0 + 0.4372 / 14)]
    s = std_difference_summary(a, b)
    assert (s["decreased"]["count"], s["increased"]["count"]) == (41, 14)
    assert s["decreased"]["sum"] == pytest.approx(4.7465) and round(s["decreased"]["mean"], 4) == 0.1158
    assert s["increased"]["sum"] == pytest.approx(0.4372) and round(s["increased"]["mean"], 4) == 0.0312
    empty = std_difference_summary([1.0], [1.0])
    assert empty["decreased"]["count"] == 0 and np.isnan(empty["decreased"]["mean"])
    with pytest.raises(ValueError):
        std_difference_summary([1.0, 2.0], [1.0])
