"""The notebook runner against the committed `cpu` run store: it must be complete (a fresh clone
renders the cpu book without training or data); the scorecard's inputs from it: tests/test_scorecard.py."""
from pathlib import Path

import pytest

from arreg_core.analysis import artifact_path
from arreg_core.experiments import ANALYSED, Experiments
from arreg_core.profiles import load_profile
from arreg_core.runs import run_path

ROOT = Path(__file__).resolve().parents[1]
CPU_RUNS = ROOT / load_profile("cpu")["runs_dir"]


@pytest.mark.parametrize("experiment", [e for e in ANALYSED if e != "tinyimagenet"])
def test_the_committed_cpu_store_has_every_run_and_artifact(experiment):
    ex = Experiments.from_parameters("cpu", runs_dir=CPU_RUNS)
    analysis = load_profile("cpu").get("analysis", {})
    configs = ex.configs(experiment)
    assert configs
    for config in configs:
        path = run_path(config, CPU_RUNS)
        assert (path / "metrics.json").exists(), f"{path.name} is not committed: run `arreg prepare --profile cpu`"
        for piece in ANALYSED[experiment]:
            assert artifact_path(path, piece, analysis.get(piece)).exists(), f"{path.name}: no {piece} artifact"


def test_a_run_in_two_experiments_gets_the_pieces_of_both(tmp_path):
    """With arch = deeper_arch the AR sweep's runs are the deeper experiment's too (which reads no
    artifacts); they must still get the sweep's artifacts, whichever experiment is queued first."""
    from arreg_core.experiments import prepare_profile

    deeper = load_profile("smoke")["deeper_arch"]
    done = prepare_profile("smoke", workers=1, runs_dir=tmp_path, device="cpu", experiments=("deeper", "ar_sweep"),
                           arch=deeper, eps=[4], epochs=1, n_train=60, n_test=40)
    assert len(done) == 1
    analysis = load_profile("smoke")["analysis"]
    for piece in ANALYSED["ar_sweep"]:
        assert artifact_path(tmp_path / done[0], piece, analysis.get(piece)).exists(), piece
