"""The "Performance and cost" chapter's readers: every committed result file reads into its table,
and the paper profile's re-estimate follows from the step matrix by the stated rule."""
import json
import shutil

import pandas as pd
import pytest

from arreg_core import gpu_sessions as gs
from arreg_core import performance as perf


def test_precision_table_keeps_small_losses_and_marks_a_zero_spread():
    effect = pd.DataFrame([{"metric": "train_acc", "fp32": 100.0, "bf16 mean": 100.0, "bf16 std": 0.0, "bf16 seeds": 3.0,
                            "difference / std": float("nan")},
                           {"metric": "train_loss", "fp32": 2.4e-5, "bf16 mean": 6.4e-5, "bf16 std": 3.6e-5,
                            "bf16 seeds": 3.0, "difference / std": -1.106}])
    table = perf.precision_table(effect).set_index("metric")
    assert table.loc["training accuracy %", "difference / std"] == "—"
    assert table.loc["training loss", "fp32"] == "2.4e\u201105" and table.loc["training loss", "difference / std"] == "-1.11"
    assert table["bf16 seeds"].tolist() == [3, 3] and "nan" not in table.to_string()


def test_every_committed_result_file_reads():
    assert set(perf.throughput_wide(perf.pgd_at_throughput()).index) == {"resnet20", "resnet56"}
    for name in ("pgd_at_throughput_cpu_profile.json", "pgd_at_throughput_cpu_no_native_bf16.json",
                 "pgd_at_throughput_h200.json"):
        assert (perf.pgd_at_throughput(name)["images/s"] > 0).all()
    assert (perf.train_throughput()["channels_last gain"] > 0).all()
    builds = perf.book_builds()
    assert list(builds.profile) == ["cpu", "cpu-v1", "cpu-v1"]
    assert (builds["whole book (s)"] == builds["train and analyse (s)"] + builds["render (s)"]).all()
    assert len(perf.fast_path_runs()) == 18 and "test_acc" in set(perf.precision_effect().metric)
    assert perf.spectral_clip()["speed-up"].max() > 1
    assert not perf.spectrum_timings().empty and not perf.padding_gap("spectrum_trained_resnet8x2_cpu.json").empty
    first = gs.gpu_sessions()[0]
    assert set(perf.session_steps(first).step) >= {"matrix", "train"}
    assert perf.session_total(first)["gpu"].startswith("NVIDIA")
    assert "passed" in perf.tests_summary(first)
    assert "The plan: resnet20 with the bf16 CUDA graph step" in perf.session_line(first)
    assert perf.gpu_step_matrix()["x eager fp32"].notna().all() and perf.stacked_line()
    use, floor = perf.compute_use(), perf.flop_floor()
    assert (use["% of ceiling"] > 0).all() and (floor["x the floor"] > 1).all() and perf.floor_line(floor, use)
    log = perf.build_log("results/gpu/runs/prepare_log.jsonl")
    assert len(log) == perf.build_summary("results/gpu/runs/prepare_log.jsonl")["trained"] == 4


def test_machine_names_what_the_file_records_and_what_it_does_not():
    line = perf.machine({"meta": {"gpu": "NVIDIA H200", "cpu_model": "Xeon", "cpu_bf16_flags": ["amx_bf16"],
                                  "threads": 1, "torch": "2.11", "date": "2026-12-04"}})
    assert line == "NVIDIA H200, Xeon with AMX-BF16, 1 torch thread, torch 2.11, 2026-12-04"
    assert perf.machine({"threads": 2}) == "CPU model not recorded, 2 torch threads, date not recorded"


def test_span_joins_a_range_and_collapses_equal_ends():
    assert perf.span([2.531, 2.72]) == "2.53-2.72x"
    assert perf.span([0.941, 0.939]) == "0.94x"


def matrix(eager=1000.0, graphed_one=2000.0, graphed_streams=3000.0, eager_bf16=1500.0):
    rows = [("plain loop", "fp32", 1, "-", 800.0), ("eager", "fp32", 1, "-", eager), ("eager", "bf16", 1, "-", eager_bf16),
            ("CUDA graph", "fp32", 1, "-", graphed_one), ("CUDA graph", "bf16", 1, "-", graphed_one),
            ("CUDA graph", "bf16", 4, "streams", graphed_streams), ("CUDA graph", "bf16", 4, "processes", 1900.0)]
    return pd.DataFrame([{"network": "resnet56", "step": s, "precision": p, "runs per GPU": n, "sharing": how,
                          "images/s per GPU": v, "x plain loop": v / 800.0, "x eager fp32": v / eager}
                         for s, p, n, how, v in rows])


def test_graph_speedup_is_the_fastest_graphed_cell_over_one_eager_fp32_run():
    """Both precisions against the eager fp32 step (the one the paper profile's cost measured), not
    against an eager step of their own precision (eager bf16 here 1.5x fp32)."""
    speed = perf.graph_speedup(matrix())
    assert speed["fp32"] == {"speedup": 2.0, "runs per GPU": 1, "sharing": "-"}
    assert speed["bf16"] == {"speedup": 3.0, "runs per GPU": 4, "sharing": "streams"}
    assert "it is not met" in perf.step_goal_line(matrix())
    assert "it is met" in perf.step_goal_line(matrix(graphed_streams=4000.0))


def test_paper_cost_divides_the_cifar_resnet_steps_and_keeps_clipping_and_tinyimagenet(tmp_path, monkeypatch):
    """The CIFAR ResNet parts: the eager fp32 hours over the graphed speed-up, in each precision; a
    spectral-norm run keeps its clipping hours; Tiny-ImageNet keeps its eager estimate."""
    cost = {"meta": {"spectral_clip_seconds": 36.0},
            "runs": [{"experiment": "ar_sweep", "spectral_norm": None, "epochs": 100, "hours_fp32": 4.0, "hours_fast": 3.0},
                     {"experiment": "spectral_norm", "spectral_norm": 1.0, "epochs": 100, "hours_fp32": 5.0, "hours_fast": 4.0},
                     {"experiment": "tinyimagenet", "spectral_norm": None, "epochs": 90, "hours_fp32": 8.0, "hours_fast": 6.0}]}
    (tmp_path / "paper_profile_cost_h200.json").write_text(json.dumps(cost))
    monkeypatch.setattr(perf, "gpu_cells", lambda gpu=None, results=None: matrix())
    table = perf.paper_cost(tmp_path).set_index("experiment")
    assert table.loc["ar_sweep", "graphed fp32"] == pytest.approx(2.0)      # 4 h / 2x
    assert table.loc["ar_sweep", "graphed bf16"] == pytest.approx(4 / 3)    # 4 h (fp32) / 3x
    assert table.loc["spectral_norm", "graphed bf16"] == pytest.approx(4.0 / 3 + 1.0)  # clipping: 100 x 36 s = 1 h
    assert table.loc["tinyimagenet", "graphed bf16"] == 6.0 and table.loc["tinyimagenet", "graphed fp32"] == 8.0
    assert table.loc["total", "graphed bf16"] == pytest.approx(4 / 3 + 7 / 3 + 6.0)
    assert table.loc["total", "runs"] == 3 and table.loc["spectral_norm", "of which spectral clipping"] == pytest.approx(1.0)
    assert "9.7 H200-hours, within this project's goal of 15" in perf.paper_cost_line(table.reset_index())


def test_session_steps_read_each_step_with_its_first_error(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "session.log").write_text(
        "NVIDIA H200, 580.1, 143771 MiB, 1980 MHz\n== tests (limit 75 s, 500 s left)\nE   ImportError: no x\n"
        "== tests: exit 2 after 16 s\n== train (limit 300 s, 480 s left)\n== train: exit 0 after 290 s\n"
        "gpu_session: results in /out after 320 s (exit 1)\n")
    steps = perf.session_steps("s", tmp_path)
    assert steps.to_dict("records") == [
        {"step": "tests", "limit (s)": 75, "exit": 2, "seconds": 16, "error": "ImportError: no x"},
        {"step": "train", "limit (s)": 300, "exit": 0, "seconds": 290, "error": ""}]
    assert perf.session_total("s", tmp_path) == {"seconds": 320, "exit": 1, "gpu": "NVIDIA H200", "driver": "580.1",
                                                 "memory_gib": 143771 / 1024, "torch": "?"}


def test_build_log_skips_a_cut_line(tmp_path):
    log = tmp_path / "prepare_log.jsonl"
    log.write_text(json.dumps({"event": "start", "date": "2026-12-04T17:00:00+0000", "profile": "gpu", "workers": 4,
                               "gpu": "NVIDIA H200", "elapsed_s": 0.0}) + "\n"
                   + json.dumps({"event": "run", "run": "a", "seconds": 10.0, "found": False, "resumed_from": 3,
                                 "elapsed_s": 11.0}) + '\n{"event": "ru\n')
    assert perf.build_log(log).to_dict("records") == [
        {"run": "a", "seconds": 10.0, "found": False, "resumed from epoch": 3, "elapsed (s)": 11.0}]
    summary = perf.build_summary(log)
    assert (summary["profile"], summary["workers"], summary["date"], summary["trained"]) == ("gpu", 4, "2026-12-04", 1)


def test_the_store_line_names_the_log_inside_the_repository():
    """No absolute checkout path on the page: a log inside the repository is named from its root."""
    from pathlib import Path
    log = Path(perf.__file__).resolve().parents[1] / "results" / "cpu" / "runs" / "prepare_log.jsonl"
    line = perf.store_built_line(log)
    assert line.startswith("`results/cpu/runs/prepare_log.jsonl`: ") and str(log.parents[3]) not in line


def test_a_step_ratio_is_the_median_per_round_ratio_and_the_page_says_when_it_disagrees_with_the_rates():
    table = pd.DataFrame({"network": "resnet8", "step": ["plain loop", "fp32 + channels_last", "bf16"],
                          "images/s": [150.0, 140.0, 300.0], "x plain loop": [1.0, 1.16, 2.0]})
    note = perf.ratio_note(table)
    assert "fp32 + channels_last's median rate is 140 images/s against the plain loop's 150 (0.93x)" in note
    assert note.endswith("its median per-round ratio 1.16x.")
    assert perf.ratio_note(table.iloc[[0, 2]]).endswith("here the two agree.")


def test_the_fast_path_runs_carry_seed_and_clip_and_the_precision_line_names_the_largest_pgd_shift(tmp_path):
    runs = [{"before": f"r{i}-0123456789ab", "after": f"r{i}-ba9876543210", "train_s": [10.0, 4.0],
             "train_acc": [100.0, 100.0 if i else 16.0], "test_acc": [38.0, 37.0 if i else 16.8],
             "pgd_acc": [10.0, 11.5 if i else 22.6]} for i in range(3)]
    results, store = tmp_path / "results", tmp_path / "runs"
    results.mkdir()
    (results / "cpu_v1_fast_path_book_time.json").write_text(json.dumps({"runs": runs}))
    for i, clip in enumerate((None, 3.0)):  # the third run's config is missing
        (store / runs[i]["before"]).mkdir(parents=True)
        (store / runs[i]["before"] / "config.json").write_text(json.dumps({"seed": i, "spectral_norm": clip, "n_test": 1000}))
    pairs = perf.fast_path_runs(results, store)
    assert list(pairs.seed) == [0, 1, "?"] and list(pairs["SN clip"]) == ["-", "3", "?"]
    assert list(pairs.run) == ["r0", "r1", "r2"] and pairs["speed-up"].eq(2.5).all()
    effect = pd.DataFrame([{"metric": "test_acc", "fp32": 37.6, "bf16 mean": 35.5, "bf16 std": 0.6, "bf16 seeds": 3,
                            "difference / std": 3.5}])
    line = perf.precision_line(effect, pairs)
    assert "differ by at most 21.2 points of test accuracy, and by at most 1.5 points of PGD accuracy but in one run: " \
           "r0 (seed 0), 10.0% in fp32 against 22.6%, a network at 16% training accuracy, its PGD accuracy measured on " \
           "the 380 and 168 test images each network classifies correctly" in line


def test_the_padding_line_gives_both_gaps_in_absolute_value():
    line = perf.padding_line()
    gaps = perf.padding_gap("spectrum_trained_resnet8x2_cpu.json")
    assert perf.span(100 * gaps["std of singular values"].abs(), "{:.1f}", "%") in line
    assert "resnet8 x2 of the `cpu` profile" in line and "(" not in line.split("trained ")[1].split(" of the")[0]


def test_runs_that_differ_only_in_a_clip_that_never_acted_are_named():
    row = {"run": "resnet8-pgd-eps16", "seed": 0, "fp32 (s)": 10.0, "fast path (s)": 4.0, "speed-up": 2.5,
           "train acc fp32": 27.2, "train acc fast": 28.2, "test acc fp32": 24.2, "test acc fast": 23.4,
           "PGD acc fp32": 82.2, "PGD acc fast": 84.6}
    runs = pd.DataFrame([{**row, "SN clip": "-"}, {**row, "SN clip": "5", "fp32 (s)": 12.0},
                         {**row, "SN clip": "3", "PGD acc fast": 80.0}])
    assert perf._clip_twins(runs) == (" resnet8-pgd-eps16 (seed 0) has the same accuracies in both builds without a "
                                      "clip and with a clip of 5: the clip did not change that network.")
    assert perf._clip_twins(runs.iloc[[0, 2]]) == ""


def test_each_step_shows_the_range_of_its_per_round_ratios_where_the_file_has_rounds(tmp_path):
    rows = [{"arch": "r", "loop": "plain (DataLoader)", "precision": "fp32", "images_per_s": 100.0, "ratio_vs_plain": 1.0,
             "images_per_s_per_round": [100.0, 50.0]},
            {"arch": "r", "loop": "arreg", "precision": "bf16", "channels_last": True, "images_per_s": 150.0,
             "ratio_vs_plain": 2.0, "images_per_s_per_round": [150.0, 125.0]}]
    (tmp_path / "t.json").write_text(json.dumps({"results": rows}))
    table = perf.pgd_at_throughput("t.json", tmp_path)
    assert list(table["x plain loop, rounds"]) == ["1.00x", "1.50-2.50x"]
    assert "their range is the last column" in perf.ratio_note(table)
    del rows[1]["images_per_s_per_round"]
    (tmp_path / "t.json").write_text(json.dumps({"results": rows}))
    assert "x plain loop, rounds" not in perf.pgd_at_throughput("t.json", tmp_path)


def step_file(rows, plain=True, date="2026-12-06"):
    """A gpu_step_matrix.py file of resnet56 cells (step, precision, runs, sharing, images/s per GPU)."""
    plain_rate = 800.0
    cells = ([("plain loop", "fp32", 1, "-", plain_rate)] if plain else []) + rows
    return {"meta": {"gpu": "NVIDIA H200", "date": date, "torch": "2.11"},
            "results": [{"arch": "resnet56", "step": s, "precision": p, "runs_per_gpu": n, "sharing": how,
                         "images_per_s_per_run": v / n, "images_per_s_per_gpu": v,
                         **({"ratio_per_gpu_vs_plain": v / plain_rate} if plain else {})}
                        for s, p, n, how, v in cells]}


def session(results, folder, files=(), log="NVIDIA H200, 580.1, 143771 MiB, 1980 MHz\n"):
    """A filed session's folder: its session.log and `files` ({name: JSON data})."""
    (results / folder).mkdir(parents=True)
    (results / folder / "session.log").write_text(log)
    for name, data in dict(files).items():
        (results / folder / name).write_text(json.dumps(data))


def test_sessions_are_ordered_by_date_and_each_kind_of_file_is_read_from_the_newest_session_that_has_one(tmp_path):
    cells = [("eager", "fp32", 1, "-", 1000.0), ("CUDA graph", "fp32", 1, "-", 2000.0), ("CUDA graph", "bf16", 1, "-", 3000.0)]
    session(tmp_path, "gpu_session_h200_2026-12-04", {"gpu_step_matrix_h200.json": step_file(cells)})
    session(tmp_path, "gpu_session_h100_2026-12-05", {"gpu_step_matrix_h100.json": step_file(cells)})
    stacked = [("eager", "fp32", 1, "-", 1100.0), ("CUDA graph", "bf16", 4, "stacked", 5500.0),
               ("CUDA graph", "bf16", 4, "streams", 4400.0)]
    session(tmp_path, "gpu_session_h200_2026-12-05_3", {"gpu_step_stacked_h200.json": step_file(stacked, plain=False)})
    session(tmp_path, "gpu_session_h200_2026-12-05_2")
    (tmp_path / "gpu_session_h200").mkdir()  # not a filed session's name: ignored
    assert gs.gpu_sessions(tmp_path) == ["gpu_session_h200_2026-12-04", "gpu_session_h100_2026-12-05",
                                           "gpu_session_h200_2026-12-05_2", "gpu_session_h200_2026-12-05_3"]
    assert perf.newest_file("gpu_step_matrix", results=tmp_path) == "gpu_session_h100_2026-12-05/gpu_step_matrix_h100.json"
    assert perf.newest_file("gpu_step_matrix", "h200", tmp_path) == "gpu_session_h200_2026-12-04/gpu_step_matrix_h200.json"
    assert perf.newest_file("gpu_step_stacked", "h100", tmp_path) is None
    # the newest matrix is an H100's: its cells are not joined with an H200's stacked cells
    assert set(perf.gpu_cells(results=tmp_path).file) == {"gpu_session_h100_2026-12-05/gpu_step_matrix_h100.json"}
    cpu = step_file([("eager", "bf16", 1, "-", 600.0), ("eager", "bf16", 2, "stacked", 240.0)], plain=False)
    (tmp_path / "gpu_step_stacked_cpu.json").write_text(json.dumps(cpu))
    assert perf.stacked_gpus(tmp_path) == ["h200"]
    cells = perf.gpu_cells("h200", tmp_path)
    stack = cells[cells.sharing == "stacked"].iloc[0]
    # within its own file: 5,500 / 1,100 = 5x the eager fp32 step; no plain loop there, so through the
    # matrix's eager fp32 over plain loop (1,000 / 800): 6.25x the plain loop
    assert stack["x eager fp32"] == pytest.approx(5.0) and stack["x plain loop"] == pytest.approx(6.25)
    assert perf.graph_speedup(cells)["bf16"] == {"speedup": pytest.approx(5.0), "runs per GPU": 4, "sharing": "stacked"}
    assert "it is met" in perf.step_goal_line(cells) and "CUDA graph with 4 runs stacked:" in perf.step_goal_line(cells)
    # the H200's stacked cells are shown although the page's GPU (the newest matrix's) is the H100
    line = perf.stacked_line(tmp_path)
    assert line.startswith("`gpu_session_h200_2026-12-05_3/gpu_step_stacked_h200.json`: NVIDIA H200")
    assert "resnet56, 4 runs: stacked 5,500 against streams 4,400 images/s per GPU (1.25x)." in line
    # a later H100 session's stacked cells come beside them, each GPU from its newest file
    session(tmp_path, "gpu_session_h100_2026-12-06", {"gpu_step_stacked_h100.json": step_file(
        [("eager", "fp32", 1, "-", 900.0), ("CUDA graph", "bf16", 8, "stacked", 3000.0),
         ("CUDA graph", "bf16", 8, "streams", 4000.0)], plain=False)})
    assert perf.stacked_gpus(tmp_path) == ["h200", "h100"]
    (tmp_path / "gpu_session_h100_2026-12-07").mkdir()  # a newer one without streams cells: no pair to show
    (tmp_path / "gpu_session_h100_2026-12-07" / "gpu_step_stacked_h100.json").write_text(json.dumps(step_file(
        [("eager", "fp32", 1, "-", 900.0), ("CUDA graph", "bf16", 4, "stacked", 3000.0)], plain=False)))
    line = perf.stacked_line(tmp_path)
    assert "`gpu_session_h100_2026-12-07/gpu_step_stacked_h100.json`" in line and "h100_2026-12-06" not in line
    assert line.endswith("Graphed, per GPU: no pair of cells was measured.")
    shutil.rmtree(tmp_path / "gpu_session_h100_2026-12-07")
    line = perf.stacked_line(tmp_path)
    assert line.index("gpu_step_stacked_h200.json") < line.index("`gpu_session_h100_2026-12-06/gpu_step_stacked_h100.json`")
    assert "resnet56, 8 runs: stacked 3,000 against streams 4,000 images/s per GPU (0.75x)." in line


def test_the_stacked_line_says_no_gpu_measured_the_stack_and_gives_the_cpus(tmp_path):
    cpu = step_file([("eager", "bf16", 1, "-", 600.0), ("eager", "bf16", 2, "stacked", 240.0)], plain=False)
    (tmp_path / "gpu_step_stacked_cpu.json").write_text(json.dumps(cpu))
    line = perf.stacked_line(tmp_path)
    assert line.startswith("No GPU session has measured the stack yet") and "2 stacked runs 240 images/s" in line
    assert "against 600 for one run alone" in line


def test_a_session_line_reads_plan_stack_choice_notes_and_the_tests_in_the_session_log(tmp_path):
    log = ("date: 2026-12-06\nNVIDIA H100 80GB HBM3, 580.2, 81559 MiB, 1980 MHz\ntorch 2.12.0+cu130 | cuda 13.0\n"
           "== tests_cuda (limit 75 s, 530 s left)\n.....\n12 passed, 390 deselected in 40.1s\n"
           "== tests_cuda: exit 0 after 45 s\n")
    choice = {"arch": "resnet20", "runs": 4, "stacked_images_per_s_per_gpu": 30000.0,
              "streams_images_per_s_per_gpu": 22000.0, "stack": 3}
    session(tmp_path, "gpu_session_h100_2026-12-06", {"gpu_stack_choice.json": choice}, log=log)
    line = perf.session_line("gpu_session_h100_2026-12-06", tmp_path)
    assert line.startswith("`gpu_session_h100_2026-12-06/`: NVIDIA H100 80GB HBM3 (driver 580.2, 80 GiB), torch "
                           "2.12.0+cu130, cut off before its last line.")
    assert "No plan was sized (that needs this session's step matrix and an empty store)" in line
    assert "4 resnet20 runs stacked 30,000 images/s per GPU against 22,000 on streams, so the runs trained in stacks of 3" in line
    assert line.endswith("The CUDA tests: 12 passed, 390 deselected in 40.1s.")
    (tmp_path / "gpu_session_h100_2026-12-06" / "notes.md").write_text("The train step ran out of time.\n")
    choice["cells"] = "benchmarks/results/gpu_session_h100_2026-12-05/gpu_step_stacked_h100.json"
    (tmp_path / "gpu_session_h100_2026-12-06" / "gpu_stack_choice.json").write_text(json.dumps(choice))
    assert ("22,000 on streams (the cells of `gpu_session_h100_2026-12-05/gpu_step_stacked_h100.json`, an earlier "
            "session's), so") in perf.session_line("gpu_session_h100_2026-12-06", tmp_path)
    assert "The train step ran out of time. The CUDA tests:" in perf.session_line("gpu_session_h100_2026-12-06", tmp_path)
    choice.update(tests_exit=1, stack=1)
    (tmp_path / "gpu_session_h100_2026-12-06" / "gpu_stack_choice.json").write_text(json.dumps(choice))
    assert ("session's); the session's CUDA tests did not all pass (exit 1), so the runs trained one per process."
            in perf.session_line("gpu_session_h100_2026-12-06", tmp_path))
    choice.update(tests_exit=124, stacked_images_per_s_per_gpu=20000.0)  # the stack lost anyway
    (tmp_path / "gpu_session_h100_2026-12-06" / "gpu_stack_choice.json").write_text(json.dumps(choice))
    assert ("session's), so the runs trained one per process (the session's CUDA tests ran out of time as well)."
            in perf.session_line("gpu_session_h100_2026-12-06", tmp_path))
    choice.update(tests_exit=0, stack=3, stacked_images_per_s_per_gpu=30000.0)
    (tmp_path / "gpu_session_h100_2026-12-06" / "gpu_stack_choice.json").write_text(json.dumps(choice))
    (tmp_path / "gpu_session_h100_2026-12-06" / "gpu_ceiling_h100.json").write_text(json.dumps(
        {"meta": {"gpu": "NVIDIA H100 80GB HBM3"}, "n": 8192, "bf16_matmul_tflops": 661.4}))
    assert ("in stacks of 3. The chip's ceiling: a bf16 matrix product of 8192x8192 matrices ran 661 TFLOP/s. The train step"
            in perf.session_line("gpu_session_h100_2026-12-06", tmp_path))


def test_the_ceiling_is_the_newest_measured_one_and_else_the_datasheets(tmp_path):
    top, source = perf.ceiling("h200", tmp_path)
    assert top == 989.0 and "datasheet" in source
    session(tmp_path, "gpu_session_h200_2026-12-06",
            {"gpu_ceiling_h200.json": {"meta": {"gpu": "NVIDIA H200"}, "n": 8192, "bf16_matmul_tflops": 790.0}})
    top, source = perf.ceiling("h200", tmp_path)
    assert top == 790.0 and "gpu_session_h200_2026-12-06/gpu_ceiling_h200.json" in source
    assert "datasheet" in perf.ceiling("h100", tmp_path)[1]


def test_the_flop_floor_divides_the_counted_flops_by_the_ceiling_and_the_line_says_what_the_goal_needs(tmp_path, monkeypatch):
    flops = {"meta": {}, "kinds": [{"kind": ["wrn50_2", 1, "pgd", 10, 64, 200, 256], "training_input": 56,
                                    "gflop_per_image": 500.0, "forward_gflop_per_image": 22.0},
                                   {"kind": ["resnet56", 1, "pgd", 10, 32, 10, 256], "training_input": 32,
                                    "gflop_per_image": 5.0, "forward_gflop_per_image": 0.25}],
             "runs": [{"experiment": "ar_sweep", "pflop": 3.6 * 1000 * 1.0},        # 1 h at 1,000 TFLOP/s
                      {"experiment": "tinyimagenet", "pflop": 3.6 * 1000 * 4.0}]}   # 4 h
    cost = {"meta": {"spectral_clip_seconds": 0.0},
            "probes_ms_per_image": [{"kind": ["wrn50_2", 1, "pgd", 10, 64, 200, 256], "fp32": 4.0, "fast": 2.0}],
            "runs": [{"experiment": "ar_sweep", "spectral_norm": None, "epochs": 1, "hours_fp32": 30.0, "hours_fast": 20.0},
                     {"experiment": "tinyimagenet", "spectral_norm": None, "epochs": 1, "hours_fp32": 30.0,
                      "hours_fast": 20.0}]}
    (tmp_path / "step_flops.json").write_text(json.dumps(flops))
    (tmp_path / "paper_profile_cost_h200.json").write_text(json.dumps(cost))
    monkeypatch.setattr(perf, "gpu_cells", lambda gpu=None, results=None: matrix())
    monkeypatch.setattr(perf, "DATASHEET_BF16_TFLOPS", {"h200": 1000.0})
    use = perf.compute_use(tmp_path).set_index("step")
    assert use.loc["eager bf16 + channels_last", "TFLOP/s"] == pytest.approx(250.0)   # 500 GFLOP / 2 ms
    assert use.loc["eager fp32", "% of ceiling"] == pytest.approx(12.5)
    graphed = use.loc["CUDA graph bf16, 4 runs on streams"]                            # 5 GFLOP x 3,000 images/s
    assert graphed["TFLOP/s"] == pytest.approx(15.0) and graphed.network == "resnet56"
    floor = perf.flop_floor(tmp_path).set_index("experiment")
    assert floor.loc["total", "hours at the ceiling"] == pytest.approx(5.0)
    assert floor.loc["ar_sweep", "graphed bf16 steps (h)"] == pytest.approx(10.0)          # 30 h / 3x
    assert floor.loc["tinyimagenet", "x the floor"] == pytest.approx(5.0)               # 20 h / 4 h
    line = perf.floor_line(floor.reset_index(), use.reset_index(), tmp_path)
    assert "at least 5.0 hours, 4.0 of them Tiny-ImageNet's" in line and "reaches 25% of the ceiling" in line
    # 15 h - 10 h of CIFAR leaves 5 h (more than the 4 h floor): 80% of the ceiling; at the CIFAR floor, 14 h
    assert "leaves Tiny-ImageNet 5.0 hours, 80% of the ceiling for its step" in line
    assert "leave 14.0 hours: Tiny-ImageNet's step would need 29% of the ceiling, 1.4x its eager bf16 rate" in line


def test_a_gpu_without_a_matrix_or_a_ceiling_is_one_clear_error(tmp_path):
    session(tmp_path, "gpu_session_h100_2026-12-06")
    with pytest.raises(ValueError, match="no filed GPU session holds a step matrix"):
        perf.gpu_step_matrix(results=tmp_path)
    with pytest.raises(ValueError, match="no filed GPU session of the h100 holds a step matrix"):
        perf.gpu_cells("h100", tmp_path)
    with pytest.raises(ValueError, match="run benchmarks/gpu_ceiling.py on it"):
        perf.ceiling("a100", tmp_path)
