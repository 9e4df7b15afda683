"""The notebook runner against the committed `cpu` run store: it must be complete (a fresh clone
renders the cpu book without training or data); the scorecard's inputs from it: tests/test_scorecard.py."""
from pathlib import Path

import numpy as np
import pytest

from arreg_core.analysis import artifact_path
from arreg_core.experiments import ANALYSED, Experiments
from arreg_core.profiles import Profile, load_profile
from arreg_core.runs import run_path

ROOT = Path(__file__).resolve().parents[1]
CPU_RUNS = ROOT / load_profile("cpu").runs_dir


@pytest.mark.parametrize("experiment", [e for e in ANALYSED if e != "tinyimagenet"])
def test_the_committed_cpu_store_has_every_run_and_artifact(experiment):
    ex = Experiments.from_parameters("cpu", runs_dir=CPU_RUNS)
    analysis = load_profile("cpu").analysis
    seeds_of = load_profile("cpu").analysis_seeds  # e.g. the Theorem 3.1 bound on seed 0 only
    configs = ex.configs(experiment)
    assert configs
    for config in configs:
        path = run_path(config, CPU_RUNS)
        assert (path / "metrics.json").exists(), f"{path.name} is not committed: run `arreg prepare --profile cpu`"
        for piece in ANALYSED[experiment]:
            if piece in seeds_of and config.seed not in seeds_of[piece]:
                continue
            assert artifact_path(path, piece, analysis.get(piece)).exists(), f"{path.name}: no {piece} artifact"


def test_a_run_in_two_experiments_gets_the_pieces_of_both(tmp_path):
    """With arch = deeper_arch the AR sweep's runs are the deeper experiment's too (which reads no
    artifacts); they must still get the sweep's artifacts, whichever experiment is queued first."""
    from arreg_core.experiments import prepare_profile

    deeper = load_profile("smoke").grid["deeper_arch"]
    done = prepare_profile("smoke", workers=1, runs_dir=tmp_path, device="cpu", experiments=("deeper", "ar_sweep"),
                           arch=deeper, eps=[4], seeds=[0], epochs=1, n_train=60, n_test=40)
    assert len(done) == 1
    analysis = load_profile("smoke").analysis
    for piece in ANALYSED["ar_sweep"]:
        assert artifact_path(tmp_path / done[0], piece, analysis.get(piece)).exists(), piece


def test_tidy_accessors_on_the_cpu_store(monkeypatch):
    """What the chapters read instead of joining artifacts to runs by hand: one row per run (with
    its seed), per run and split / attack / layer, and {eps: array} of one seed; the bound only
    on its analysed seed (`analysis_seeds`)."""
    monkeypatch.setenv("ARREG_RUNS", str(CPU_RUNS))
    ex = Experiments.from_environment("cpu")
    metrics = ex.metrics("ar_sweep")
    assert list(metrics.eps) == [0] * 3 + [4] * 3 + [8] * 3 + [16] * 3 and list(metrics.seed) == [0, 1, 2] * 4
    assert (metrics.test_error == 100 - metrics.test_acc).all()
    margins = ex.summary("ar_sweep", "margins")
    assert len(margins) == 24 and set(margins.split) == {"train", "test"} and "seed" in margins
    test = margins[margins.split == "test"].set_index(["eps", "seed"])
    run = metrics.set_index(["eps", "seed"])
    assert (abs(100 * test.accuracy - run.test_acc) < 0.05).all()  # the artifact's accuracy is the run's
    assert len(ex.summary("ar_sweep", "loss_variation")) == 12 * 3
    spectrum = ex.summary("ar_sweep", "spectrum")
    assert (spectrum.groupby("run").kind.apply(lambda k: (k == "conv").sum()) == 7).all()
    by_eps = ex.by_eps("ar_sweep", "margins", "test_margin")  # seed 0
    assert sorted(by_eps) == [0, 4, 8, 16] and all(len(v) == 1000 for v in by_eps.values())
    examples = ex.examples("ar_sweep", "margins", "test_margin")  # every run's, one row an example
    assert list(examples.columns) == ["eps", "seed", "value"] and len(examples) == 12 * 1000
    seed_0 = examples[(examples.eps == 8) & (examples.seed == 0)]
    assert np.array_equal(seed_0.value.astype(float), by_eps[8])
    sigma = ex.arrays("ar_sweep", "bound", "sigma_min")
    assert list(sigma.eps) == [0, 4, 8, 16] and list(sigma.seed) == [0] * 4 and all(len(v) == 7 for v in sigma.value)
    sn = ex.metrics("spectral_norm")
    assert list(sn.spectral_norm.unique()) == [1.0, 3.0, 5.0] and list(sn.eps.unique()) == [4, 8, 16]
    assert list(ex.metrics("fgsm").seed) == [0, 1, 2] * 3 and list(ex.metrics("deeper").eps) == [4, 8, 16]


def test_machine_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ARREG_DEVICE", "cpu")
    monkeypatch.setenv("ARREG_DATA", str(tmp_path))
    monkeypatch.setenv("ARREG_RUNS", str(tmp_path / "store"))
    ex = Experiments.from_environment("smoke", eps=[2], seeds=[0])
    assert (ex.device, ex.data_root, ex.runs_dir) == ("cpu", str(tmp_path), tmp_path / "store")
    assert [c.eps for c in ex.configs("ar_sweep")] == [2]


def test_analysis_seeds_limit_a_piece_to_some_seeds(tmp_path):
    """A profile's `analysis_seeds: {bound: [0]}` (cpu: the Theorem 3.1 bound on one seed):
    `prepare_profile` computes the bound only on seed 0's runs and `summary` reads only those,
    so a chapter never computes it for the other seeds."""
    from arreg_core.experiments import prepare_profile

    entry = load_profile("smoke").entry
    smoke = Profile.from_entry("smoke", {**entry, "analysis_seeds": {"bound": [0]}})
    grid = dict(eps=[4], seeds=[0, 1], epochs=1, n_train=60, n_test=40)
    done = prepare_profile(smoke, workers=1, runs_dir=tmp_path, device="cpu", experiments=("ar_sweep",), **grid)
    ex = Experiments.from_parameters(smoke, runs_dir=tmp_path, device="cpu", **grid)
    seed_of = {r.run: r.seed for r in ex.metrics("ar_sweep").itertuples()}
    bound_params = smoke.analysis.get("bound")
    assert sorted(seed_of[name] for name in done) == [0, 1]
    for name in done:
        assert artifact_path(tmp_path / name, "bound", bound_params).exists() == (seed_of[name] == 0), name
        assert artifact_path(tmp_path / name, "margins", smoke.analysis.get("margins")).exists()
    assert list(ex.summary("ar_sweep", "bound").seed) == [0]
    assert list(ex.arrays("ar_sweep", "bound", "sigma_min").seed) == [0]  # what by_eps and the figures read
    with pytest.raises(ValueError, match="profile smoke: analysis_seeds names unknown pieces"):
        Profile.from_entry("smoke", {**entry, "analysis_seeds": {"bounds": [0]}})


def test_the_scale_table_marks_what_the_paper_does_not_state(monkeypatch):
    """The paper states neither weight decay, nor precision, nor seeds (appendix B.1): its column says
    so beside the value the `paper` profile assumes; what it states is shown as it is."""
    monkeypatch.setenv("ARREG_RUNS", str(CPU_RUNS))
    table = Experiments.from_environment("cpu").scale_table("ar_sweep")
    paper = table["paper"]
    assert paper["weight decay"] == "not stated (0.0005 assumed here)"
    assert paper["training precision"] == "not stated (fp32 assumed here)"
    assert paper["training seeds"] == "not stated (one network per strength published)"
    assert paper["momentum"] == "0.9" and table["this build"]["weight decay"] == "0.0005"
