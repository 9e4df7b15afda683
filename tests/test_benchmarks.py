"""The benchmark scripts still run (tiny settings; their timings are not checked here)."""
import importlib.util
import json
from pathlib import Path

import pytest

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


def test_spectral_clip_benchmark_compares_with_the_every_block_svd(tmp_path):
    out = tmp_path / "clip.json"
    result = load("spectral_clip").main(["--arch", "resnet8", "--clip", "2", "--scale", "0.5", "--rounds", "1",
                                         "--json", str(out)])
    assert result["layers"] == 7 and result["speedup"] > 0 and max(result["repeats"]) >= 1
    assert result["repeats"] == result["repeats_reference"] and result["max_kernel_difference"] < 1e-4
    assert json.loads(out.read_text())["machine"]["cpu_model"]


def test_gpu_check_script_cpu_side(tmp_path, cifar10_jpeg_root):
    """benchmarks/gpu_check.sh end to end at its tiny scale on the CPU: environment set-up, the
    CUDA test selection, the paper profile's cost estimate and the throughput comparison, each
    leaving its JSON (the GPU numbers themselves come from a lent machine)."""
    import os
    import subprocess
    import sys

    from arreg_core.data import cache_dir

    env = {**os.environ, "DEVICE": "cpu", "SCALE": "tiny", "ARREG_DATA": str(cifar10_jpeg_root),
           "ARREG_CACHE": str(cache_dir()),  # the decoded archive the other tests use
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cost = json.loads((tmp_path / "paper_profile_cost_cpu.json").read_text())
    total = next(r for r in cost["hours_by_experiment"] if r["experiment"] == "total")
    assert total["hours_fp32"] > 0 and cost["meta"]["cpu_model"]
    rows = json.loads((tmp_path / "pgd_at_throughput_cpu.json").read_text())["results"]
    assert rows[0]["loop"].startswith("plain") and rows[0]["ratio_vs_plain"] == 1.0
    assert {(r["precision"], r["channels_last"]) for r in rows[1:]} == {("fp32", False), ("bf16", True)}
    assert "tests_cuda: exit 0" in done.stdout


def test_pgd_at_throughput_rejects_a_bad_variant():
    import pytest

    with pytest.raises(SystemExit, match="PRECISION-clN-cN"):
        load("pgd_at_throughput").parse_variant("bf16-cl2")
    assert load("pgd_at_throughput").parse_variant("bf16-cl1-c2")["compile"] == "reduce-overhead"


def test_exercise_timings_runs_every_exercise_cell_of_a_chapter(tmp_path):
    """Under smoke (tiny runs on generated data): one timing per exercise cell, from an empty store,
    with the cell's source hash; --resume keeps a timing of an unchanged cell and measures again the
    cell edited since (here: its recorded hash changed)."""
    from arreg_core.book import class_fingerprint, exercise_cells, source_fingerprint

    module = load("exercise_timings")
    cells = exercise_cells(BENCH.parent, "secB5")
    assert len(cells) == 2 and all(label and title and "chapter.exercise(profile" in src for label, title, src in cells)
    out = tmp_path / "timings.json"
    result = module.main(["--profile", "smoke", "--notebooks", "secB5", "--threads", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == result and not result["complete"]  # the other chapters' cells are not timed
    assert result["profile"] == "smoke" and [t["label"] for t in result["timings"]] == [c[0] for c in cells]
    assert [t["source_sha"] for t in result["timings"]] == [source_fingerprint(c[2]) for c in cells]
    assert all(t["seconds"] > 0 for t in result["timings"])
    assert result["class_fingerprint"] == class_fingerprint()  # what the teaching page checks its timings against
    first, second = result["timings"]
    out.write_text(json.dumps({**result, "timings": [{**first, "seconds": 12345.0}, {**second, "source_sha": "0" * 12}]}))
    resumed = module.main(["--profile", "smoke", "--notebooks", "secB5", "--threads", "1", "--json", str(out), "--resume"])
    assert resumed["timings"][0]["seconds"] == 12345.0 and resumed["timings"][1]["source_sha"] == second["source_sha"]
    with pytest.raises(SystemExit):
        module.main(["--profile", "smoke", "--notebooks", "nonesuch", "--json", str(out)])


def test_precision_effect_compares_fp32_with_the_bf16_seeds():
    import pandas as pd

    from benchmarks.precision_effect import METRICS, compare

    bf16 = pd.DataFrame([{m: v for m in METRICS} for v in (10.0, 12.0, 14.0)])
    table = compare({m: 16.0 for m in METRICS}, bf16).set_index("metric")
    assert table.loc["test_acc", "bf16 mean"] == 12.0 and table.loc["test_acc", "bf16 std"] == 2.0
    assert table.loc["gap_acc", "difference / std"] == 2.0 and table.loc["pgd_acc", "bf16 seeds"] == 3
    assert pd.isna(compare({m: 1.0 for m in METRICS}, bf16.iloc[:1]).loc[0, "difference / std"])


def test_pgd_at_throughput_times_a_profiles_own_runs(tmp_path):
    """--profile: the profile's network, batch and attack (smoke: resnet8, batch 50, PGD-2 at eps 8),
    the plain loop with the same attack; every variant's ratio to it in the JSON."""
    module = load("pgd_at_throughput")
    setting, sizes = module.profile_setting("smoke")
    assert sizes == {"arch": "resnet8", "batch_size": 50, "images": 300} and setting["steps"] == 2
    out = tmp_path / "t.json"
    module.main(["--profile", "smoke", "--images", "100", "--repeats", "1", "--threads", "1",
                 "--variants", "fp32-cl0-c0", "bf16-cl1-c0", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["meta"]["batch_size"] == 50 and saved["meta"]["profile"] == "smoke"
    assert saved["meta"]["attack"].startswith("l-inf PGD eps 8/255, 2 steps of 10/255")  # auto: 2.5 eps / steps
    assert [r["arch"] for r in saved["results"]] == ["resnet8"] * 3 and saved["results"][2]["ratio_vs_plain"] > 0


def test_rebuild_check_tells_identical_runs_from_changed_ones(tmp_path):
    """Identical: same metrics but the seconds, same arrays, meta equal but the checkpoint hash;
    a changed array, a changed metric and a run not rebuilt are each reported."""
    import numpy as np

    check = load("rebuild_check")

    def write(store, run, seconds, sha, margin, acc=50.0):
        d = store / run
        (d / "analysis").mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"test_acc": acc, "train_seconds": seconds}))
        meta = json.dumps({"run": run, "checkpoint_sha256": sha})
        np.savez(d / "analysis" / "margins-x.npz", test_margin=np.array([margin, np.nan]), meta=np.array(meta))

    old, new = tmp_path / "committed", tmp_path / "rebuilt"
    for run in ("a", "b", "c", "d"):
        write(old, run, 10.0, "1", 0.5)
    write(new, "a", 99.0, "2", 0.5)  # identical: seconds and checkpoint hash differ by nature
    write(new, "b", 10.0, "1", 0.25)  # an analysis array changed
    write(new, "c", 10.0, "1", 0.5, acc=51.0)  # a metric changed
    result = check.compare_stores(new, old)  # "d" was never rebuilt
    assert (result["runs"], result["identical"], result["arrays_compared"]) == (4, 1, 6)
    assert result["differences"] == {"b": ["margins-x.npz:test_margin"], "c": ["metric test_acc"], "d": ["not rebuilt"]}
    (new / "prepare_log.jsonl").write_text("\n".join(json.dumps(e) for e in [
        {"event": "start", "date": "x", "cpu_model": "cpu"}, {"event": "run", "found": False, "elapsed_s": 50.0},
        {"event": "alive", "elapsed_s": 60.0}]) + "\n")  # killed after its heartbeat
    out = check.main([str(new), str(old), "--render-s", "40", "--json", str(tmp_path / "r.json"),
                      "--copy-log", str(tmp_path / "log.jsonl")])
    assert out["total_wall_s"] == 100.0 and out["build_log"]["trained"] == 1 and (tmp_path / "log.jsonl").is_file()
    assert json.loads((tmp_path / "r.json").read_text())["identical"] == 1


def test_fast_path_book_time_pairs_runs_by_config_but_precision(tmp_path):
    """Runs pair across the two builds by their config without the precision; the training
    seconds, build logs and render seconds add up to the ratios; an unfinished build is refused."""
    book_time = load("fast_path_book_time")

    def write(store, run, precision, eps, seconds, acc):
        d = store / run
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"arch": "resnet8", "eps": eps, "precision": precision}))
        (d / "metrics.json").write_text(json.dumps({"train_seconds": seconds, "test_acc": acc}))

    def log(store, *elapsed):  # one invocation per entry, each killed after its last heartbeat
        lines = [e for s in elapsed for e in ({"event": "start", "cpu_model": "cpu"}, {"event": "alive", "elapsed_s": s})]
        (store / "prepare_log.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")

    before, after = tmp_path / "fp32", tmp_path / "bf16"
    write(before, "b4", "fp32", 4, 300.0, 40.0)
    write(before, "b8", "fp32", 8, 300.0, 30.0)
    write(after, "a8", "bf16", 8, 100.0, 31.0)  # listed in another order than its twin
    write(after, "a4", "bf16", 4, 200.0, 41.0)
    log(before, 500.0, 400.0)
    log(after, 300.0)
    out = book_time.main([str(before), str(after), "--before-render-s", "100", "--after-render-s", "100",
                          "--json", str(tmp_path / "t.json")])
    assert out["book_speedup"] == 2.5 and out["train_s"] == [600.0, 300.0] and out["train_speedup"] == 2.0
    assert [(p["before"], p["after"], p["speedup"], p["test_acc"]) for p in out["runs"]] == [
        ("b4", "a4", 1.5, [40.0, 41.0]), ("b8", "a8", 3.0, [30.0, 31.0])]
    assert json.loads((tmp_path / "t.json").read_text())["before"]["total_wall_s"] == 1000.0
    write(after, "a16", "bf16", 16, 100.0, 20.0)  # a run the fp32 build has not finished
    with pytest.raises(SystemExit, match="1 runs are not finished in .*fp32"):
        book_time.pair_runs(before, after)


def test_gpu_step_matrix_runs_on_the_cpu(tmp_path, monkeypatch):
    """benchmarks/gpu_step_matrix.py at a tiny scale on the CPU (where there is no graph to capture):
    single-run cells in both precisions, a shared cell of two processes and one of two runs stacked
    into one network, each row with its rate per run and per device; the JSON is written."""
    out = tmp_path / "matrix.json"
    monkeypatch.syspath_prepend(str(BENCH))  # importable by name: the shared cell's processes are spawned
    table = importlib.import_module("gpu_step_matrix").main(["--device", "cpu", "--archs", "resnet8", "--images", "32",
                                          "--batch-size", "16", "--runs", "1", "2", "--seconds", "0.05",
                                          "--repeats", "1", "--no-plain", "--json", str(out)])
    single = table[table.runs_per_gpu == 1]
    assert set(single.precision) == {"fp32", "bf16"} and set(table.step) == {"eager"}
    shared = table[table.runs_per_gpu == 2].set_index("sharing")
    assert set(shared.index) == {"processes", "stacked"} and (shared.images_per_s_per_gpu > 0).all()
    assert shared.images_per_s_per_run.processes == pytest.approx(shared.images_per_s_per_gpu.processes / 2, rel=0.5)
    assert shared.images_per_s_per_run.stacked == pytest.approx(shared.images_per_s_per_gpu.stacked / 2)
    written = json.loads(out.read_text())
    assert written["meta"]["cpu_model"] and not written["errors"]


def test_gpu_tier_plan_sizes_the_epochs_from_the_measured_rate():
    plan = load("gpu_tier_plan").plan
    rows = [{"arch": "resnet20", "precision": p, "step": s, "runs_per_gpu": n, "sharing": sh, "images_per_s_per_gpu": r}
            for p, s, n, sh, r in [("fp32", "CUDA graph", 1, "-", 10000), ("bf16", "CUDA graph", 1, "-", 14000),
                                   ("bf16", "CUDA graph", 4, "processes", 13000), ("fp32", "eager", 1, "-", 5000)]]
    out = plan({"results": rows}, seconds=390, reserve=90)
    assert out["precision"] == "bf16" and out["step"] == "CUDA graph" and out["rate_images_per_s_per_gpu"] == 13000
    assert out["epochs"] == int(300 // (50_000 * (3 + 1 / 11) / 13000)) and out["milestones"] == [12, 18]
    rows[1]["images_per_s_per_gpu"] = 11000  # bf16 only 1.1x: the paper's fp32 (no 4-run rate: one run's)
    assert plan({"results": rows}, seconds=390)["precision"] == "fp32"
    eager = plan({"results": [rows[3]]}, seconds=30)
    assert eager["step"] == "eager" and eager["epochs"] == 2  # at least two epochs, whatever the time


def test_gpu_tier_plan_stacks_the_runs_only_where_the_stack_beat_streams(tmp_path, capsys):
    """STACK=3 (one seed's PGD runs as one network) where the graphed 4-run stack trained more
    images per GPU than 4 graphed runs on streams in the same script and the CUDA tests passed;
    else STACK=1; a missing cell (a timed-out matrix) never stacks."""
    module = load("gpu_tier_plan")
    rows = [{"arch": a, "precision": "bf16", "step": s, "runs_per_gpu": n, "sharing": sh, "images_per_s_per_gpu": r}
            for a, s, n, sh, r in [("resnet20", "CUDA graph", 4, "streams", 20000),
                                   ("resnet20", "CUDA graph", 4, "stacked", 31000),
                                   ("resnet20", "eager", 4, "stacked", 90000),  # not the tier's step
                                   ("resnet56", "CUDA graph", 4, "stacked", 99000)]]  # not the tier's network
    assert module.stack_choice({"results": rows})["stack"] == 3
    rows[1]["images_per_s_per_gpu"] = 19000
    assert module.stack_choice({"results": rows})["stack"] == 1
    assert module.stack_choice({"results": rows[1:]})["stack"] == 1
    path = tmp_path / "stacked.json"
    path.write_text(json.dumps({"results": rows[:1] + [{**rows[1], "images_per_s_per_gpu": 25000}]}))
    module.main([str(path), "--stack", "--json", str(tmp_path / "choice.json")])
    assert capsys.readouterr().out.strip() == "STACK=3"
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert choice["streams_images_per_s_per_gpu"] == 20000 and choice["cells"] == str(path)
    assert choice["tests_exit"] == 0
    module.main([str(path), "--stack", "--tests-exit", "124", "--json", str(tmp_path / "choice.json")])
    assert capsys.readouterr().out.strip() == "STACK=1"  # the CUDA tests ran out of time: no stack
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert choice["tests_exit"] == 124 and choice["stacked_images_per_s_per_gpu"] == 25000


def test_file_gpu_session_files_each_session_in_its_own_folder_and_imports_its_runs(tmp_path):
    from arreg_core.runs import get_or_train
    from arreg_core.train import TrainConfig
    from arreg_core.transfer import pack_store

    config = TrainConfig(dataset="synthetic", arch="resnet8", n_train=40, n_test=20, epochs=1, batch_size=20,
                         milestones=(), method="none", eps=0)
    run = get_or_train(config, tmp_path / "lent" / "runs", device="cpu", progress=False)
    out = tmp_path / "out"
    out.mkdir()
    pack_store(tmp_path / "lent" / "runs", out / "gpu-runs")
    (out / "session.log").write_text("date: 2026-12-06\nNVIDIA H100 80GB HBM3, 580.2, 81559 MiB, 1980 MHz\n")
    (out / "gpu_step_stacked_h100.json").write_text("{}")
    script = load("file_gpu_session")
    results, store = tmp_path / "results", tmp_path / "store"
    folder = script.main([str(out), "--results", str(results), "--runs-dir", str(store), "--note", "A note."])
    assert folder == results / "gpu_session_h100_2026-12-06"
    assert sorted(p.name for p in folder.iterdir()) == ["gpu_step_stacked_h100.json", "notes.md", "session.log"]
    assert (store / run.path.name / "metrics.json").exists()
    with pytest.raises(SystemExit, match="filed already, as .*gpu_session_h100_2026-12-06"):
        script.file_session(out, results, store)  # the same session again: nothing filed twice
    (out / "session.log").write_text("date: 2026-12-06\nNVIDIA H200, 580.2, 143771 MiB, 1980 MHz\n")
    again, imported = script.file_session(out, results, store)  # the day's second session, on another GPU
    assert again.name == "gpu_session_h200_2026-12-06_2" and imported == [(run.path.name, "unchanged")]
    from arreg_core import gpu_sessions
    assert gpu_sessions.gpu_sessions(results) == ["gpu_session_h100_2026-12-06", "gpu_session_h200_2026-12-06_2"]
    (out / "session.log").write_text("no GPU here\n")
    with pytest.raises(SystemExit, match="names no NVIDIA GPU"):
        script.file_session(out, results, store)
    with pytest.raises(SystemExit, match="holds no session.log"):
        script.file_session(tmp_path, results, store)
    assert script.session_facts("NVIDIA A10, 1, 2 MiB\n")[0] == "gpu"


def test_step_flops_counts_the_attack_and_the_training_pass_of_each_kind(tmp_path):
    """PGD-10: ten forward and input-gradient passes, then a forward and a backward with weight
    gradients (23 forwards' worth, less the first layer's input gradient in the training pass, which
    nothing needs); FGSM: 5; clean training: 3. ResNet-20's forward: its 40.6 M multiply-adds."""
    from arreg_core.train import TrainConfig

    script = load("step_flops")
    base = dict(dataset="cifar10", arch="resnet8", attack_step=2.0, batch_size=256)
    first_layer = 2 * 3 * 16 * 9 * 32 * 32 / 1e9  # its input gradient: the one the training pass skips
    for method, eps, steps, ratio in (("pgd", 8.0, 10, 23), ("fgsm", 8.0, 1, 5), ("none", 0.0, 1, 3)):
        counted = script.step_flops(TrainConfig(**base, method=method, eps=eps, attack_steps=steps))
        assert counted["gflop_per_image"] == pytest.approx(ratio * counted["forward_gflop_per_image"] - first_layer,
                                                           rel=1e-6)
    out = script.main(["--experiments", "fgsm", "--json", str(tmp_path / "flops.json")])
    tier = next(k for k in out["kinds"] if k["kind"][0] == "resnet20")
    assert tier["forward_gflop_per_image"] == pytest.approx(2 * 40.6e-3, rel=0.01)
    assert {r["experiment"] for r in out["runs"]} == {"fgsm"} and all(r["pflop"] > 0 for r in out["runs"])
    assert json.loads((tmp_path / "flops.json").read_text())["meta"]["cpu_model"]


def test_gpu_ceiling_times_a_bf16_matrix_product(tmp_path):
    out = load("gpu_ceiling").main(["--device", "cpu", "--n", "64", "--seconds", "0.02", "--windows", "2",
                                    "--json", str(tmp_path / "c.json")])
    assert len(out["windows_tflops"]) == 2 and out["bf16_matmul_tflops"] == max(out["windows_tflops"]) > 0
    assert json.loads((tmp_path / "c.json").read_text())["n"] == 64
