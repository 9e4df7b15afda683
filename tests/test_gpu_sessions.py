"""Where the lent GPU sessions' files are: the GPU's tag, the session folders, and the cells that decide
a session's stack (benchmarks/gpu_session.sh calls these through `python -m arreg_core.gpu_sessions`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arreg_core import gpu_sessions as gs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, tag", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"),
                                       ("NVIDIA A100-SXM4-40GB", "a100"), ("NVIDIA L40S", "l40s"),
                                       ("Tesla V100-SXM2-16GB", "gpu"), ("", "gpu")])
def test_a_gpu_is_tagged_by_its_model_and_else_gpu(name, tag):
    assert gs.gpu_tag(name) == tag


def filed(results, folder, *names):
    (results / folder).mkdir(parents=True)
    for name in names:
        (results / folder / name).write_text(json.dumps({"results": []}))


def test_a_new_session_folder_is_numbered_after_the_days_sessions_on_any_gpu(tmp_path):
    assert gs.session_folder(tmp_path, "h200", "2026-12-06") == tmp_path / "gpu_session_h200_2026-12-06"
    filed(tmp_path, "gpu_session_h100_2026-12-06")
    filed(tmp_path, "gpu_session_h200_2026-12-05")
    assert gs.session_folder(tmp_path, "h200", "2026-12-06") == tmp_path / "gpu_session_h200_2026-12-06_2"


def test_the_stack_is_decided_by_the_sessions_own_cells_else_the_newest_filed_of_its_gpu_else_its_matrix(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    results.mkdir()
    out.mkdir()
    assert gs.stack_cells(out, "h200", results) is None
    (out / "gpu_step_matrix_h200.json").write_text("{}")
    assert gs.stack_cells(out, "h200", results) == out / "gpu_step_matrix_h200.json"
    filed(results, "gpu_session_h100_2026-12-07", "gpu_step_stacked_h100.json")  # another GPU's: not read
    filed(results, "gpu_session_h200_2026-12-04", "gpu_step_stacked_h200.json")
    filed(results, "gpu_session_h200_2026-12-06", "gpu_step_stacked_h200.json")
    filed(results, "gpu_session_h200_2026-12-06_2")  # newer, but it did not measure the stack
    assert gs.stack_cells(out, "h200", results) == results / "gpu_session_h200_2026-12-06/gpu_step_stacked_h200.json"
    (out / "gpu_step_stacked_h200.json").write_text("{}")
    assert gs.stack_cells(out, "h200", results) == out / "gpu_step_stacked_h200.json"


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "arreg_core.gpu_sessions", *args], cwd=cwd, check=True,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}).stdout.strip()


def test_the_command_line_prints_the_tag_and_paths_below_the_working_directory_or_nothing(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    filed(results, "gpu_session_h200_2026-12-04", "gpu_step_stacked_h200.json")
    assert run("tag", "NVIDIA H200", cwd=tmp_path) == "h200"
    assert run("filed", "gpu_step_stacked", "h100", "--results", str(results), cwd=tmp_path) == ""
    assert (run("filed", "gpu_step_stacked", "h200", "--results", str(results), cwd=tmp_path)
            == "benchmarks/results/gpu_session_h200_2026-12-04/gpu_step_stacked_h200.json")
    assert (run("stack-cells", str(tmp_path / "out"), "h200", "--results", str(results), cwd=tmp_path)
            == "benchmarks/results/gpu_session_h200_2026-12-04/gpu_step_stacked_h200.json")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "gpu_step_stacked_h200.json").write_text("{}")
    assert (run("stack-cells", str(tmp_path / "out"), "h200", "--results", str(results), cwd=tmp_path)
            == "out/gpu_step_stacked_h200.json")
    # OUT outside the working directory: its path as given
    assert run("stack-cells", str(tmp_path / "out"), "h200", "--results", str(results), cwd=results) == str(
        tmp_path / "out" / "gpu_step_stacked_h200.json")
    assert run("filed", "gpu_step_stacked", "h200", "--results", str(tmp_path / "nothing"), cwd=tmp_path) == ""


def test_gpu_session_sh_takes_its_tag_and_its_stack_cells_from_this_module():
    script = (ROOT / "benchmarks" / "gpu_session.sh").read_text()
    assert "-m arreg_core.gpu_sessions tag" in script and "-m arreg_core.gpu_sessions stack-cells" in script
    assert "-m arreg_core.gpu_sessions filed gpu_step_stacked" in script and "h100|h200" not in script
    assert "TESTS_EXIT=$?" in script and '--stack --tests-exit "$TESTS_EXIT"' in script
