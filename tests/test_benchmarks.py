"""The benchmark scripts still run (tiny settings; their timings are not checked here)."""
import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_throughput_runs(tmp_path):
    out = tmp_path / "tp.json"
    table = load("train_throughput").main(["--archs", "resnet8", "--batch-size", "16", "--clean-images", "32",
                                            "--pgd-images", "16", "--repeats", "1", "--devices", "cpu",
                                            "--json", str(out)])
    assert len(table) == 4 and (table.images_per_s > 0).all()
    assert len(json.loads(out.read_text())["results"]) == 4


def test_spectrum_benchmark_runs(tmp_path):
    out = tmp_path / "sp.json"
    load("spectrum").main(["--arch", "resnet8", "--dense-max-size", "4", "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text())


def test_exercise_timings_runs_every_exercise_cell_of_a_chapter(tmp_path):
    """Under smoke (tiny runs on generated data): one timing per exercise cell, from an empty store."""
    module = load("exercise_timings")
    cells = module.exercise_cells("secB5")
    assert len(cells) == 2 and all(label and title and "chapter.exercise(profile" in src for label, title, src in cells)
    out = tmp_path / "timings.json"
    result = module.main(["--profile", "smoke", "--notebooks", "secB5", "--threads", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["profile"] == "smoke" and [t["label"] for t in result["timings"]] == [c[0] for c in cells]
    assert all(t["seconds"] > 0 for t in result["timings"])
