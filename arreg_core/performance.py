"""The "Performance and cost" chapter's readers: each file of `benchmarks/results/` (and a run
store's build log) as a tidy table, with the machine and date the file records, and the `paper`
profile's GPU cost re-estimated from the measured speed of the CUDA-graphed step.

Every number the chapter prints comes from these files; nothing here measures anything
(`benchmarks/README.md` says which script writes which file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from . import plots
from .executors import store_wall_time
from .gpu_sessions import RESULTS, SESSION, newest_file, newest_files, nvidia_smi, session_gpu

ROOT = Path(__file__).resolve().parents[1]
PAPER_GOAL_HOURS = 15.0       # the goal for the whole `paper` profile, in H200-hours
STEP_GOAL = 5.0               # the GPU step's goal: images/s per GPU against the plain loop (ResNet-56)
SHORT = {"batch_size": "batch", "weight_decay": "wd", "eps_warmup_epochs": "eps warm-up"}  # narrow table headers
GRAPHED_EXPERIMENTS = ("ar_sweep", "deeper", "spectral_norm", "fgsm")  # the CIFAR ResNet parts
# dense bf16 tensor-core TFLOP/s by NVIDIA's H100 and H200 SXM datasheets: the ceiling until a lent
# session measured the chip's own (benchmarks/gpu_ceiling.py)
DATASHEET_BF16_TFLOPS = {"h100": 989.0, "h200": 989.0}
COST_GPU = "h200"  # the `paper` profile's cost (paper_profile_cost_h200.json) was measured on an H200
ATTACKS = {"pgd": "PGD-10", "fgsm": "FGSM", "none": "none"}


def load(name: str, results: Path | None = None) -> dict:
    """The JSON file `name` of benchmarks/results (or of `results`)."""
    return json.loads((Path(results or RESULTS) / name).read_text())


def machine(data: dict) -> str:
    """Where and when a result file was measured, from its `meta` or `machine` entry: GPU, CPU
    model, torch threads, torch version and date; what the file does not record is said so."""
    meta = data.get("meta") or data.get("machine") or data
    parts = [meta["gpu"]] if meta.get("gpu") else []
    cpu = meta.get("cpu_model") or meta.get("processor")
    flags = meta.get("cpu_bf16_flags") or []
    if cpu:
        parts.append(f"{cpu}{' with AMX-BF16' if 'amx_bf16' in flags else ''}")
    else:
        parts.append("CPU model not recorded")
    if meta.get("threads"):
        parts.append(f"{meta['threads']} torch thread{'s' if meta['threads'] != 1 else ''}")
    if meta.get("torch"):
        parts.append(f"torch {meta['torch']}")
    parts.append(meta.get("date") or "date not recorded")
    return ", ".join(parts)


def span(values, fmt: str = "{:.2f}", unit: str = "x") -> str:
    """"lo-hi" of `values` with `unit` (one value where they agree to the format)."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return f"{lo}{unit}" if lo == hi else f"{lo}-{hi}{unit}"


def step_name(row: dict) -> str:
    """A training step's label: the plain loop, or precision + channels_last + compile."""
    if row.get("loop", "").startswith("plain"):
        return "plain loop"
    name = row["precision"] + (" + channels_last" if row.get("channels_last") else "")
    return name + (" + compile" if row.get("compile") else "")


def pgd_at_throughput(name: str = "pgd_at_throughput_cpu.json", results: Path | None = None) -> pd.DataFrame:
    """benchmarks/pgd_at_throughput.py: images/s of one PGD training epoch per network and step,
    and the ratio to the plain loop (median over interleaved rounds)."""
    rows = load(name, results)["results"]
    table = pd.DataFrame([{"network": r["arch"], "step": step_name(r), "images/s": r["images_per_s"],
                           "x plain loop": r["ratio_vs_plain"]} for r in rows])
    rounds = {r["arch"]: r.get("images_per_s_per_round") for r in rows if step_name(r) == "plain loop"}
    if all(r.get("images_per_s_per_round") and rounds.get(r["arch"]) for r in rows):  # each round's ratio, low-high
        table["x plain loop, rounds"] = [span([a / b for a, b in zip(r["images_per_s_per_round"], rounds[r["arch"]])])
                                         for r in rows]
    return table


def throughput_wide(table: pd.DataFrame) -> pd.DataFrame:
    """`pgd_at_throughput` with one row per network and one column per step ("images/s (ratio)")."""
    cells = table.assign(cell=[f"{v:,.1f} ({x:.2f}x)" for v, x in zip(table["images/s"], table["x plain loop"])])
    wide = cells.pivot(index="network", columns="step", values="cell")
    return wide[list(dict.fromkeys(table.step))]


def train_throughput(results: Path | None = None) -> pd.DataFrame:
    """benchmarks/train_throughput.py: images/s of clean and PGD-10 training (batch 128), with and
    without channels_last, and what channels_last gains."""
    t = pd.DataFrame(load("train_throughput_cpu.json", results)["results"])
    wide = t.pivot_table(index=["arch", "training"], columns="channels_last", values="images_per_s", sort=False)
    out = pd.DataFrame({"network": [a for a, _ in wide.index], "training": [k for _, k in wide.index],
                        "images/s": wide[False].values, "images/s, channels_last": wide[True].values})
    return out.assign(**{"channels_last gain": out["images/s, channels_last"] / out["images/s"]})


def book_builds(results: Path | None = None) -> pd.DataFrame:
    """The books built from an empty run store (cpu_rebuild.json, cpu_v1_fast_path_book_time.json):
    one row per build, seconds to train and analyse every run, to render, and in all."""
    rebuild, fast = load("cpu_rebuild.json", results), load("cpu_v1_fast_path_book_time.json", results)
    builds = [("cpu", "bf16 + channels_last", rebuild["build_log"], rebuild["render_s"], rebuild["machine"]),
              ("cpu-v1", "fp32", fast["before"], fast["before"]["render_s"], fast["machine"]),
              ("cpu-v1", "bf16 + channels_last", fast["after"], fast["after"]["render_s"], fast["machine"])]
    return pd.DataFrame([{"profile": p, "training step": step, "runs": log["trained"],
                          "invocations": len(log["sessions"]), "train and analyse (s)": log["wall_s"],
                          "render (s)": render, "whole book (s)": log["wall_s"] + render,
                          "whole book (h)": (log["wall_s"] + render) / 3600, "measured on": machine({"machine": m}),
                          "date": log["sessions"][0]["date"][:10]}
                         for p, step, log, render, m in builds])


def fast_path_runs(results: Path | None = None, store: Path | None = None) -> pd.DataFrame:
    """cpu_v1_fast_path_book_time.json: each run's training seconds in fp32 and with the fast path
    (bf16 + channels_last), the speed-up, and its clean training, test and PGD accuracy in both. Its
    seed, spectral-norm clip and data set (left out of its name: the section names it) are read from
    the fp32 build's run, whose store is committed (`store`, results/cpu-v1/runs; "?" where absent)."""
    store = Path(store or ROOT / "results" / "cpu-v1" / "runs")
    rows, test_images = [], []
    for r in load("cpu_v1_fast_path_book_time.json", results)["runs"]:
        config = store / r["before"] / "config.json"
        config = json.loads(config.read_text()) if config.exists() else {}
        clip = config.get("spectral_norm", "?")
        name = re.sub(r"-[0-9a-f]{12}$", "", r["after"])
        name = name.replace(f"-{config['dataset']}", "") if config.get("dataset") else name
        rows.append({"run": name, "seed": config.get("seed", "?"),
                     "SN clip": "-" if clip is None else f"{clip:g}" if isinstance(clip, float) else clip,
                     "fp32 (s)": r["train_s"][0], "fast path (s)": r["train_s"][1],
                     "speed-up": r["train_s"][0] / r["train_s"][1],
                     "train acc fp32": r["train_acc"][0], "train acc fast": r["train_acc"][1],
                     "test acc fp32": r["test_acc"][0], "test acc fast": r["test_acc"][1],
                     "PGD acc fp32": r["pgd_acc"][0], "PGD acc fast": r["pgd_acc"][1]})
        test_images.append(config.get("n_test"))
    table = pd.DataFrame(rows)
    table.attrs["test images"] = test_images  # per row, from the run's config (None where absent)
    return table


def regime_frontier(name: str = "cpu_regime_frontier.jsonl", results: Path | None = None) -> pd.DataFrame:
    """benchmarks/cpu_profile_sizing.py's probes (one JSON line each): the config fields that differ
    between them (as text, "-" where unset), then clean training and test accuracy, wall seconds and
    the machine's load average at the probe's end."""
    probes = [json.loads(line) for line in (Path(results or RESULTS) / name).read_text().splitlines() if line.strip()]
    configs = pd.DataFrame([{k: str(v) if isinstance(v, list) else v for k, v in p["config"].items()} for p in probes])
    varying = configs.loc[:, configs.nunique(dropna=False) > 1]
    shown = varying.apply(lambda column: [f"{v:g}" if isinstance(v, float) and v == v else "-" if v is None or v != v
                                          else str(v) for v in column])
    shown.columns = [SHORT.get(c, c.replace("_", " ")) for c in shown.columns]
    return shown.assign(**{"train acc": [p["train_acc"] for p in probes], "test acc": [p["test_acc"] for p in probes],
                           "wall (s)": [round(p["wall_s"]) for p in probes],
                           "load": [p.get("load_average_at_end") for p in probes]})


def precision_effect(results: Path | None = None) -> pd.DataFrame:
    """benchmarks/precision_effect.py: one fp32 run beside the bf16 runs of its seeds, per metric."""
    return pd.DataFrame(load("precision_effect_cpu.json", results)["comparison"])


def precision_table(effect: pd.DataFrame) -> pd.DataFrame:
    """`precision_effect` for the page: metrics named for a reader, numbers to 4 significant digits
    (training losses are ~1e-5; the exponent's hyphen a non-breaking one, so a cell never wraps
    inside a number), and "—" for the difference in standard deviations where the bf16 seeds do not
    differ at all (a std of 0)."""
    table = effect.assign(metric=effect.metric.map(lambda m: plots.COLUMN_LABELS.get(m, m)))
    digits = {c: table[c].map(lambda v: f"{v:.4g}".replace("e-", "e\u2011")) for c in ("fp32", "bf16 mean", "bf16 std")}
    ratio = [f"{r:.2f}" if s > 0 else "—" for r, s in zip(table["difference / std"], table["bf16 std"])]
    return table.assign(**digits, **{"bf16 seeds": table["bf16 seeds"].astype(int), "difference / std": ratio})


def spectral_clip(results: Path | None = None) -> pd.DataFrame:
    """benchmarks/spectral_clip.py: seconds to clip every layer by each method, and the ratio."""
    data = load("spectral_clip_cpu.json", results)
    seconds = data["seconds"]
    slowest = max(seconds.values())
    return pd.DataFrame([{"method": k, "seconds": v, "speed-up": slowest / v} for k, v in seconds.items()])


def spectrum_timings(name: str = "spectrum_cpu.json", results: Path | None = None) -> pd.DataFrame:
    """benchmarks/spectrum.py: per layer group, the Fourier method's and the dense SVD's seconds at
    the side-by-side input size, their ratio and the largest relative difference."""
    groups = pd.DataFrame(load(name, results)["groups"])
    groups = groups[groups["size"].notna()]
    return pd.DataFrame({"layer": groups.layer, "count": groups["count"], "shape": groups["shape"],
                         "input": groups["size"].astype(int), "Fourier (s)": groups.fourier_s,
                         "dense SVD (s)": groups.dense_build_s + groups.dense_svd_s,
                         "x faster": [f"{v:.1f}" for v in groups.ratio],
                         "max rel. difference": [f"{v:.0e}" for v in groups.max_rel_err]}).reset_index(drop=True)


def padding_gap(name: str = "spectrum_cpu.json", results: Path | None = None) -> pd.DataFrame:
    """benchmarks/spectrum.py: the circular-padding (Fourier) spectrum against the real zero-padded
    layer's, per layer: relative difference of the top singular value and of their std."""
    gap = pd.DataFrame(load(name, results)["padding_gap"])
    return pd.DataFrame({"layer": gap.layer, "shape": gap["shape"], "input": gap["size"],
                         "top singular value": gap.top_rel_diff, "std of singular values": gap.std_rel_diff})


def padding_line(random: str = "spectrum_cpu.json", trained: str = "spectrum_trained_resnet8x2_cpu.json",
                 results: Path | None = None) -> str:
    """How far the circular-padding spectrum the book computes is from the real zero-padded layers'
    (`padding_gap`): relative differences, in absolute value, of the top singular value and of the std."""
    def gaps(name):
        gap = padding_gap(name, results)
        return (span(100 * gap["top singular value"].abs(), "{:.1f}", "%"),
                span(100 * gap["std of singular values"].abs(), "{:.1f}", "%"), gap["input"].iloc[0])
    (top_r, std_r, size), (top_t, std_t, _) = gaps(random), gaps(trained)
    arch = load(trained, results)["arch"].split(" (")[0]
    return (f"The spectra below are those of the layers with circular padding. Against the real zero-padded layers "
            f"(`benchmarks/spectrum.py`, at an input of {size}x{size}, where the dense operator can be decomposed), the "
            f"top singular value differs by {top_r} and the std of the singular values by {std_r} on random "
            f"ResNet-56 layers, and by {top_t} and {std_t} on a trained {arch} of the `cpu` profile "
            "(the chapter Performance and cost shows each layer).")


COLUMNS = {"arch": "network", "runs_per_gpu": "runs per GPU", "images_per_s_per_run": "images/s per run",
           "images_per_s_per_gpu": "images/s per GPU", "ratio_per_gpu_vs_plain": "x plain loop"}


def newest_matrix(results: Path | None = None) -> str:
    """The step matrix of the newest session that measured one (any GPU)."""
    name = newest_file("gpu_step_matrix", results=results)
    if name is None:
        raise ValueError("no filed GPU session holds a step matrix (gpu_step_matrix_<gpu>.json): file one with "
                         "benchmarks/file_gpu_session.py")
    return name


def newest_gpu(results: Path | None = None) -> str:
    """The GPU of the newest session that measured the step matrix: the page's GPU."""
    return session_gpu(newest_matrix(results).split("/")[0])


def sharing_text(runs: int, sharing: str) -> str:
    """How `runs` runs shared a GPU, in words: "one run", "4 runs on streams", "4 runs stacked"."""
    return "one run" if runs == 1 else f"{runs} runs stacked" if sharing == "stacked" else f"{runs} runs on {sharing}"


def step_cells(name: str, results: Path | None = None) -> pd.DataFrame:
    """The cells of a benchmarks/gpu_step_matrix.py file: images/s per run and per GPU of each
    (network, precision, step, runs per GPU, sharing), `x plain loop` (per GPU, against the file's
    plain loop; NaN where it timed none) and `x eager fp32` (against the file's one run of the eager
    fp32 step of that network). Both ratios are taken within one file: files of other sessions had
    other torch versions and machines, so only ratios compare across them."""
    t = pd.DataFrame(load(name, results)["results"]).rename(columns=COLUMNS)
    eager = t[(t.step == "eager") & (t.precision == "fp32") & (t["runs per GPU"] == 1)]
    t["x eager fp32"] = t["images/s per GPU"] / t.network.map(eager.set_index("network")["images/s per GPU"])
    return t if "x plain loop" in t else t.assign(**{"x plain loop": float("nan")})


def gpu_step_matrix(name: str | None = None, results: Path | None = None) -> pd.DataFrame:
    """`step_cells` of the step matrix (`name`; by default the newest session's)."""
    return step_cells(name or newest_matrix(results), results)


def gpu_cells(gpu: str | None = None, results: Path | None = None) -> pd.DataFrame:
    """Every GPU step cell measured on `gpu` (where None: the GPU of the newest matrix): the newest
    step matrix's and the newest stacked cells' (gpu_step_stacked_<gpu>.json), each row naming its
    `file`. Where the stacked file timed no plain loop, its `x plain loop` is its `x eager fp32`
    times the matrix's eager fp32 step over its plain loop."""
    gpu = gpu or newest_gpu(results)  # not another GPU's stacked cells
    matrix_name = newest_file("gpu_step_matrix", gpu, results)
    if matrix_name is None:
        raise ValueError(f"no filed GPU session of the {gpu} holds a step matrix: run benchmarks/gpu_session.sh "
                         "with MATRIX=1 on it")
    matrix = step_cells(matrix_name, results).assign(file=matrix_name)
    stacked_name = newest_file("gpu_step_stacked", gpu, results)
    if stacked_name is None:
        return matrix
    stacked = step_cells(stacked_name, results).assign(file=stacked_name)
    plain = matrix[matrix.step == "plain loop"].set_index("network")["x eager fp32"]
    stacked["x plain loop"] = stacked["x plain loop"].fillna(stacked["x eager fp32"] / stacked.network.map(plain))
    return pd.concat([matrix, stacked], ignore_index=True)


def best_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Per network, the plain loop, the eager step and the graphed step at their fastest per GPU
    (by their ratio to the plain loop, which compares across files)."""
    rows = []
    for network, t in cells.groupby("network", sort=False):
        for step in ("plain loop", "eager", "CUDA graph"):
            steps = t[t.step == step]
            rows.append(steps.loc[steps["x plain loop"].idxmax()])
    return pd.DataFrame(rows).reset_index(drop=True).drop(columns=["x eager fp32", "file"], errors="ignore")


def plot_step_matrix(matrix: pd.DataFrame):
    """Images/s per GPU of every cell of the GPU step matrix, one panel per network, bars coloured
    by step, with the plain loop's rate as a line and the 5x goal as a dashed line."""
    colours = {"plain loop": "0.55", "eager": "tab:blue", "CUDA graph": "tab:orange"}
    networks = list(dict.fromkeys(matrix.network))
    fig, axes = plots.figure(1, len(networks), height=4.2 + plots.LEGEND_ROW)
    for ax, network in zip(axes[0], networks):
        t = matrix[matrix.network == network]
        labels = [f"{r['step']}, {r['precision']}" + (f", {r['runs per GPU']} {r['sharing']}" if r["runs per GPU"] > 1 else "")
                  for r in t.to_dict("records")]
        ax.barh(labels, t["images/s per GPU"], color=[colours[s] for s in t.step])
        plain = t[t.step == "plain loop"]["images/s per GPU"].iloc[0]
        ax.axvline(plain, color="0.3", lw=1, label="the plain loop")
        ax.axvline(STEP_GOAL * plain, color="tab:red", ls="--", lw=1, label=f"goal: {STEP_GOAL:g}x the plain loop")
        ax.invert_yaxis()
        ax.set_title(network)
        ax.set_xlabel("images/s per GPU")
        plots.legend_below(ax)  # under the panel: no bar can end beneath it
    fig.tight_layout()
    return fig


def graph_speedup(cells: pd.DataFrame, network: str = "resnet56") -> dict:
    """How much faster the GPU trains `network` with the graphed step than with the eager fp32 step,
    one run at a time, whose epoch the `paper` profile's cost measured: per precision of the graphed
    step, its fastest cell per GPU (any number of runs, any sharing, any file of `gpu_cells`) by its
    `x eager fp32`, the ratio to the same file's single eager fp32 run."""
    t = cells[cells.network == network]
    out = {}
    for precision in ("fp32", "bf16"):
        graphed = t[(t.step == "CUDA graph") & (t.precision == precision)]
        best = graphed.loc[graphed["x eager fp32"].idxmax()]
        out[precision] = {"speedup": best["x eager fp32"], "runs per GPU": int(best["runs per GPU"]),
                          "sharing": best.sharing}
    return out


def paper_cost(results: Path | None = None, network: str = "resnet56") -> pd.DataFrame:
    """The `paper` profile's H200-hours per experiment: the eager estimate of
    paper_profile_cost_h200.json (fp32; bf16 + channels_last, "fast") and the same re-estimated
    with the graphed step in each precision. The CIFAR ResNet parts (GRAPHED_EXPERIMENTS: ResNet-56,
    and ResNet-110 assumed to gain like it) are the eager fp32 hours divided by `graph_speedup` of
    `network` on the H200 (both against the eager fp32 step: the one the estimate measured), their
    spectral clipping (not part of the step; its hours are a column of their own) kept; Tiny-ImageNet's
    WRN-50-2, not measured with graphs, keeps its eager estimate in that precision. Last row: the total."""
    cost, speed = load("paper_profile_cost_h200.json", results), graph_speedup(gpu_cells(COST_GPU, results), network)
    runs = pd.DataFrame(cost["runs"])
    clip_h = runs.spectral_norm.notna() * runs.epochs * cost["meta"]["spectral_clip_seconds"] / 3600
    graphed = runs.experiment.isin(GRAPHED_EXPERIMENTS)
    runs["of which spectral clipping"] = clip_h
    for precision, column in (("fp32", "hours_fp32"), ("bf16", "hours_fast")):
        step_h = (runs["hours_fp32"] - clip_h) / speed[precision]["speedup"] + clip_h
        runs[f"graphed {precision}"] = step_h.where(graphed, runs[column])
    columns = ["hours_fp32", "hours_fast", "graphed fp32", "graphed bf16", "of which spectral clipping"]
    table = runs.groupby("experiment", sort=False)[columns].sum()
    table.loc["total"] = table.sum()
    table = table.rename(columns={"hours_fp32": "eager fp32", "hours_fast": "eager bf16"})
    table.insert(0, "runs", [*runs.groupby("experiment", sort=False).size(), len(runs)])
    return table.reset_index()


def ceiling(gpu: str = COST_GPU, results: Path | None = None) -> tuple[float, str]:
    """(TFLOP/s, where it comes from): the bf16 matrix product the newest session on `gpu` measured
    (benchmarks/gpu_ceiling.py), else the datasheet's dense bf16 rate (DATASHEET_BF16_TFLOPS)."""
    name = newest_file("gpu_ceiling", gpu, results)
    if name:
        measured = load(name, results)
        return measured["bf16_matmul_tflops"], (f"a {measured['n']}x{measured['n']} bf16 matrix product measured "
                                                f"on the {measured['meta'].get('gpu', gpu)} (`{name}`)")
    if gpu not in DATASHEET_BF16_TFLOPS:
        raise ValueError(f"no ceiling for the {gpu}: run benchmarks/gpu_ceiling.py on it and file the session")
    return DATASHEET_BF16_TFLOPS[gpu], (f"NVIDIA's datasheet rate of dense bf16 for the {gpu.upper()} SXM; no GPU "
                                        "session has measured the chip's own yet (`benchmarks/gpu_ceiling.py`)")


def compute_use(results: Path | None = None) -> pd.DataFrame:
    """The arithmetic rate each measured GPU step reached: FLOPs per image of the step
    (benchmarks/step_flops.py's count) times images per second, and its share of `ceiling`. Rows:
    every kind of step the `paper` profile's cost timed (eager fp32 and eager bf16 + channels_last;
    CIFAR-100's kinds, which differ only in the classifier, left out), then the fastest graphed bf16
    cell of each network of the H200's `gpu_cells`. The fp32 rows ran their convolutions in TF32,
    whose peak is about half the bf16 one the share is taken of."""
    flops, cost = load("step_flops.json", results), load("paper_profile_cost_h200.json", results)
    per_image = {tuple(k["kind"]): k for k in flops["kinds"]}
    top, rows = ceiling(COST_GPU, results)[0], []
    for probe in cost["probes_ms_per_image"]:
        arch, _, method, _, _, classes, _ = probe["kind"]
        if classes == 100:
            continue
        k = per_image[tuple(probe["kind"])]
        for column, step in (("fp32", "eager fp32"), ("fast", "eager bf16 + channels_last")):
            rows.append({"network": arch, "attack": ATTACKS[method], "input": k["training_input"], "step": step,
                         "GFLOP per image": k["gflop_per_image"], "images/s per GPU": 1e3 / probe[column]})
    cells = gpu_cells(COST_GPU, results)
    for network, t in cells[(cells.step == "CUDA graph") & (cells.precision == "bf16")].groupby("network", sort=False):
        best = t.loc[t["x eager fp32"].idxmax()]
        k = next((k for k in flops["kinds"] if k["kind"][0] == network and k["kind"][2:4] == ["pgd", 10]
                  and k["kind"][5] == 10), None)  # the matrix's step: PGD-10 on CIFAR-10
        if k:
            how = sharing_text(int(best["runs per GPU"]), best.sharing)
            rows.append({"network": network, "attack": "PGD-10", "input": 32, "step": f"CUDA graph bf16, {how}",
                         "GFLOP per image": k["gflop_per_image"], "images/s per GPU": best["images/s per GPU"]})
    table = pd.DataFrame(rows)
    table["TFLOP/s"] = table["GFLOP per image"] * table["images/s per GPU"] / 1e3
    return table.assign(**{"% of ceiling": 100 * table["TFLOP/s"] / top})


def flop_floor(results: Path | None = None) -> pd.DataFrame:
    """Per experiment of the `paper` profile: its counted PFLOPs (step_flops.json), the hours it needs
    at the H200's `ceiling` (the least any step could take; spectral clipping, evaluation and analysis
    left out), the training steps' hours of `paper_cost`'s graphed bf16 re-estimate (its spectral
    clipping taken out, as from the floor) and how many times the floor that is. Last row: the total."""
    runs = pd.DataFrame(load("step_flops.json", results)["runs"])
    table = runs.groupby("experiment", sort=False)[["pflop"]].sum()
    table.loc["total"] = table.sum()
    table["hours at the ceiling"] = table.pflop * 1e3 / ceiling(COST_GPU, results)[0] / 3600
    cost = paper_cost(results).set_index("experiment")
    table["graphed bf16 steps (h)"] = cost["graphed bf16"] - cost["of which spectral clipping"]
    table["x the floor"] = table["graphed bf16 steps (h)"] / table["hours at the ceiling"]
    table["spectral clipping (h)"] = cost["of which spectral clipping"]
    return table.rename(columns={"pflop": "PFLOP"}).reset_index()


def floor_line(floor: pd.DataFrame, use: pd.DataFrame, results: Path | None = None) -> str:
    """What the FLOP floor says of the PAPER_GOAL_HOURS goal: the floor in all and Tiny-ImageNet's,
    the share of the ceiling Tiny-ImageNet's PGD step and the graphed ResNet-56 reach, what the goal
    leaves Tiny-ImageNet beside the CIFAR parts' re-estimate (their steps and spectral clipping),
    and the share (and speed-up) its step would need with the CIFAR steps at their floor."""
    top, source = ceiling(COST_GPU, results)
    f = floor.set_index("experiment")
    tiny, total = f.loc["tinyimagenet"], f.loc["total"]
    cifar = f[f.index.isin(GRAPHED_EXPERIMENTS)]
    cifar_floor = cifar["hours at the ceiling"].sum()
    cifar_now, clipping = cifar["graphed bf16 steps (h)"].sum(), cifar["spectral clipping (h)"].sum()
    left_now, left = PAPER_GOAL_HOURS - cifar_now - clipping, PAPER_GOAL_HOURS - cifar_floor - clipping
    wrn = use[(use.network == "wrn50_2") & (use.attack == "PGD-10")]["% of ceiling"].max()
    resnet = use[(use.network == "resnet56") & use.step.str.startswith("CUDA graph")]["% of ceiling"].max()
    now = ("less than its floor: the goal needs the CIFAR parts faster as well" if left_now < tiny["hours at the ceiling"]
           else f"{100 * tiny['hours at the ceiling'] / left_now:.0f}% of the ceiling for its step")
    return (f"The ceiling: {top:,.0f} TFLOP/s, {source}. At that rate the whole profile needs at least "
            f"{total['hours at the ceiling']:.1f} hours, {tiny['hours at the ceiling']:.1f} of them Tiny-ImageNet's. "
            f"Tiny-ImageNet's eager PGD-10 step (WRN-50-2, wide layers on 56x56 inputs) reaches {wrn:.0f}% of the "
            f"ceiling, the graphed ResNet-56 step {resnet:.1f}%: the CIFAR networks' narrow layers leave the tensor "
            f"cores mostly unused, and their parts' re-estimated training steps, {cifar_now:.1f} hours, are "
            f"{cifar_now / cifar_floor:.0f}x their floor. Beside them and their spectral clipping ({clipping:.1f} h), "
            f"the goal of {PAPER_GOAL_HOURS:g} hours leaves Tiny-ImageNet {max(left_now, 0):.1f} hours, {now}. With the "
            f"CIFAR steps at their floor ({cifar_floor:.1f} h) it would leave {left:.1f} hours: Tiny-ImageNet's step "
            f"would need {100 * tiny['hours at the ceiling'] / left:.0f}% of the ceiling, "
            f"{tiny['graphed bf16 steps (h)'] / left:.1f}x its eager bf16 rate, a speed-up this project has not measured.")


def session_steps(folder: str, results: Path | None = None) -> pd.DataFrame:
    """The steps of a GPU session (benchmarks/gpu_session.sh's session.log): each step's time
    limit, exit status and seconds, and the first error line it printed."""
    text = (Path(results or RESULTS) / folder / "session.log").read_text()
    rows = []
    for m in re.finditer(r"^== (\w+) \(limit (\d+) s.*?\n(.*?)^== \1: exit (\d+) after (\d+) s", text, re.M | re.S):
        error = re.search(r"^E\s+(.+)$", m.group(3), re.M)
        rows.append({"step": m.group(1), "limit (s)": int(m.group(2)), "exit": int(m.group(4)),
                     "seconds": int(m.group(5)), "error": error.group(1) if error else ""})
    return pd.DataFrame(rows)


def session_total(folder: str, results: Path | None = None) -> dict:
    """A GPU session's whole wall seconds and exit status (the session log's last line), the GPU,
    driver and memory nvidia-smi named, and the torch version it ran ("?" where not printed)."""
    text = (Path(results or RESULTS) / folder / "session.log").read_text()
    end = re.search(r"after (\d+) s \(exit (\d+)\)", text)
    torch_version = re.search(r"^torch (\S+) \|", text, re.M)
    return {"seconds": int(end.group(1)) if end else None, "exit": int(end.group(2)) if end else None,
            **nvidia_smi(text), "torch": torch_version.group(1) if torch_version else "?"}


def tests_summary(folder: str, results: Path | None = None) -> str:
    """The summary line pytest printed last for a session's CUDA tests, e.g. "8 passed in 44.75s":
    from its tests_cuda.log where it has one, else from the session log's tests_cuda step."""
    root = Path(results or RESULTS) / folder
    if (root / "tests_cuda.log").exists():
        text = (root / "tests_cuda.log").read_text()
    else:
        step = re.search(r"^== tests_cuda \(.*?$(.*?)^== tests_cuda: exit", (root / "session.log").read_text(), re.M | re.S)
        text = step.group(1) if step else ""
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|errors?|skipped|deselected)", line)]
    return lines[-1].strip("= ") if lines else "pytest printed no summary"


def build_log(path: Path | str) -> pd.DataFrame:
    """A run store's build log (prepare_log.jsonl; a relative path is taken from the checkout's
    root): one row per run an invocation trained or found,
    its seconds, the epoch it resumed from and the invocation's elapsed seconds at its end."""
    rows = []
    for line in (ROOT / path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "run":
            rows.append({"run": record["run"], "seconds": record["seconds"], "found": record.get("found", False),
                         "resumed from epoch": record.get("resumed_from", 0), "elapsed (s)": record.get("elapsed_s")})
    return pd.DataFrame(rows)


def build_summary(path: Path | str) -> dict:
    """`executors.store_wall_time` of a build log, with the log's profile, workers, GPU and the
    date of its first invocation."""
    first = json.loads((ROOT / path).read_text().splitlines()[0])
    return {**store_wall_time(ROOT / path), "profile": first.get("profile"), "workers": first.get("workers"),
            "gpu": first.get("gpu"), "date": (first.get("date") or "")[:10]}


def step_goal_line(cells: pd.DataFrame, network: str = "resnet56") -> str:
    """One sentence: the GPU step's goal (STEP_GOAL x the plain loop per GPU for `network`) and the
    best cell measured (`gpu_cells`: the step matrix and the stacked cells)."""
    best = best_cells(cells)
    graph = best[(best.network == network) & (best.step == "CUDA graph")].iloc[0]
    met = "met" if graph["x plain loop"] >= STEP_GOAL else "not met"
    how = "with " + sharing_text(int(graph["runs per GPU"]), graph.sharing)
    return (f"**This project's goal for the step: at least {STEP_GOAL:g}x the plain loop's images/s per GPU for "
            f"{network}; it is {met}.** The fastest {network} cell measured is the {graph.precision} CUDA graph {how}: "
            f"{graph['images/s per GPU']:,.0f} images/s per GPU, {graph['x plain loop']:.2f}x the plain loop.")


def paper_cost_line(table: pd.DataFrame) -> str:
    """One sentence: the `paper` profile's re-estimated total against PAPER_GOAL_HOURS, and what
    the CIFAR ResNet parts alone need."""
    total = table.set_index("experiment").loc["total", "graphed bf16"]
    cifar = table[table.experiment.isin(GRAPHED_EXPERIMENTS)]["graphed bf16"].sum()
    met = "within" if total <= PAPER_GOAL_HOURS else "over"
    return (f"**With the graphed bf16 step the whole `paper` profile needs about {total:.1f} H200-hours, {met} this "
            f"project's goal of {PAPER_GOAL_HOURS:g}.** Its CIFAR ResNet parts need {cifar:.1f} hours; Tiny-ImageNet's "
            f"WRN-50-2, at its eager estimate, the other {total - cifar:.1f}.")


def source_line(name: str, results: Path | None = None) -> str:
    """"`name`: where and when it was measured" (`machine`), the line above each table of the page."""
    return f"`{name}`: {machine(load(name, results))}"


def cpu_step_line(table: pd.DataFrame) -> str:
    """The fastest CPU training step against the plain loop, and what torch.compile did (`pgd_at_throughput`)."""
    fast = table[table.step == "bf16 + channels_last"].set_index("network")["x plain loop"]
    compiled = table[table.step.str.endswith("compile")].set_index("network")["x plain loop"]
    return (f"bf16 autocast with channels_last is the fastest step here ({span(fast)} the plain loop); adding "
            f"torch.compile made it slower ({span(compiled)}), so no profile uses it.")


def ratio_note(table: pd.DataFrame) -> str:
    """Why a step's ratio can disagree with its rate beside the plain loop's (`pgd_at_throughput`): the
    ratio is the median of each round's ratio, the rates are medians of their own."""
    plain = table[table.step == "plain loop"].set_index("network")["images/s"]
    steps = table[table.step != "plain loop"].assign(rates=lambda t: t["images/s"] / t.network.map(plain).values)
    row = steps.loc[(steps.rates - steps["x plain loop"]).abs().idxmax()]
    rule = ("Each ratio is the median over the rounds of that round's ratio (both loops timed side by side; "
            + ("their range is the last column" if "x plain loop, rounds" in table else "the rounds are in the file")
            + "), not the ratio of the two median rates shown")
    if abs(row.rates - row["x plain loop"]) < 0.005:
        return rule + "; here the two agree."
    return (f"{rule}, so the two can disagree when rounds are noisy: {row.step}'s median rate "
            f"is {row['images/s']:.0f} images/s against the plain loop's {plain[row.network]:.0f} "
            f"({row.rates:.2f}x), its median per-round ratio {row['x plain loop']:.2f}x.")


def emulated_bf16_line(name: str = "pgd_at_throughput_cpu_no_native_bf16.json", results: Path | None = None) -> str:
    """bf16 on a CPU without native bf16 instructions, against fp32: why `precision: auto` picks bf16 only with them."""
    rate = pgd_at_throughput(name, results).set_index("step")["images/s"]
    bf16, fp32 = rate["bf16 + channels_last"], rate["fp32 + channels_last"]
    return (f"`{name}`: resnet20's bf16 + channels_last step ran {bf16:.1f} images/s against {fp32:.1f} in fp32 + "
            f"channels_last ({bf16 / fp32:.2f}x). "
            "This is why `precision: auto` picks bf16 only where the CPU has AMX or AVX512-BF16 (`arreg_core.device.native_bf16`).")


def rebuild_line(builds: pd.DataFrame, results: Path | None = None) -> str:
    """Where the book builds were timed, and how many runs of the `cpu` rebuild (cpu_rebuild.json) match the committed ones."""
    rebuild = load("cpu_rebuild.json", results)
    return (f"Measured on {builds['measured on'].iloc[0]}. The `cpu` rebuild: {rebuild['identical']} of its "
            f"{rebuild['runs']} runs have the committed runs' metrics (all but their training seconds) and bit-identical "
            f"analysis arrays ({rebuild['arrays_compared']} arrays compared): training is deterministic on one CPU model, "
            "torch version and thread count.")


def fast_path_line(builds: pd.DataFrame, runs: pd.DataFrame, results: Path | None = None) -> str:
    """The `cpu-v1` book and its training, fp32 against the fast path (`book_builds`, `fast_path_runs`),
    and how many runs trained at once (the fp32 build's log, cpu_v1_fp32_prepare_log.jsonl)."""
    v1 = builds[builds.profile == "cpu-v1"].set_index("training step")["whole book (s)"]
    workers = build_summary(Path(results or RESULTS) / "cpu_v1_fp32_prepare_log.jsonl")["workers"]
    return (f"The whole book: {v1['fp32'] / v1['bf16 + channels_last']:.2f}x faster with the fast path; the training of its "
            f"{len(runs)} runs {runs['fp32 (s)'].sum() / runs['fast path (s)'].sum():.2f}x "
            f"({span(runs['speed-up'])} per run). The runs trained {workers} at a time, so their seconds add up to more "
            "than the build's wall time. The book gains less than its training because the analysis (margins, spectra, "
            "loss variation, the Theorem 3.1 bound) runs in fp32 on the trained weights whatever the training precision."
            + _clip_twins(runs))


def _clip_twins(runs: pd.DataFrame) -> str:
    """Runs of `fast_path_runs` that differ only in their spectral-norm clip and have the same accuracies
    in both builds: the clip did not change those networks."""
    results = [c for c in runs.columns if c.split(" acc ")[0] in ("train", "test", "PGD")]
    twins = runs[runs.duplicated(["run", "seed", *results], keep=False)]
    clip = lambda c: "without a clip" if c == "-" else f"with a clip of {c}"  # noqa: E731
    return "".join(f" {run} (seed {g.seed.iloc[0]}) has the same accuracies in both builds "
                   f"{' and '.join(map(clip, g['SN clip']))}: the clip did not change that network."
                   for run, g in twins.groupby("run", sort=False))


def frontier_line(frontier: pd.DataFrame) -> str:
    """The setting of `regime_frontier` that fits best at eps 16, which the `cpu` profile takes, and
    what it costs in test accuracy."""
    best = frontier.loc[frontier["train acc"].idxmax()]
    return (f"The probe that fits best trains {best.epochs} epochs with a warm-up of eps over {best['eps warm-up']}: "
            f"it reaches {best['train acc']:.1f}% clean training accuracy at eps 16, the setting the "
            f"`cpu` profile takes for every run. Its test accuracy, {best['test acc']:.1f}%, is below the best probe's "
            f"{frontier['test acc'].max():.1f}%: a network that fits its 500 images memorises them.")


def precision_line(effect: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """The test accuracy in fp32 against bf16 over seeds (`precision_effect`), and how far apart the
    `cpu-v1` build's fp32 and fast-path twins of each run are (`fast_path_runs`)."""
    test = effect.set_index("metric").loc["test_acc"]
    test_gap = (pairs["test acc fp32"] - pairs["test acc fast"]).abs()
    pgd_gap = (pairs["PGD acc fp32"] - pairs["PGD acc fast"]).abs()
    worst, n_test = pairs.loc[pgd_gap.idxmax()], pairs.attrs.get("test images", [None] * len(pairs))[pgd_gap.idxmax()]
    rest = pgd_gap.drop(pgd_gap.idxmax())
    measured = (f"measured on the {worst['test acc fp32'] * n_test / 100:.0f} and {worst['test acc fast'] * n_test / 100:.0f} "
                "test images each network classifies correctly" if n_test else "measured on the test images each "
                "network classifies correctly")
    return (f"Test accuracy {test['fp32']:.1f}% in fp32 against {test['bf16 mean']:.1f} ± {test['bf16 std']:.1f}% in bf16 "
            f"({test['difference / std']:.1f} bf16 standard deviations apart, over {test['bf16 seeds']:.0f} seeds). "
            "With one fp32 seed the spread of fp32 runs between seeds is not measured, so a precision effect cannot be "
            f"told apart from a difference of seeds. The `cpu-v1` build's {len(pairs)} runs, each trained in fp32 and "
            f"with the fast path (the table above), differ by at most {test_gap.max():.1f} points of test accuracy, and "
            f"by at most {rest.max():.1f} points of PGD accuracy but in one run: {worst['run']} (seed {worst['seed']}), "
            f"{worst['PGD acc fp32']:.1f}% in fp32 against {worst['PGD acc fast']:.1f}%, a network at "
            f"{worst['train acc fast']:.0f}% training accuracy, its PGD accuracy {measured}. Precision can thus move "
            "one network's robustness where it barely fits; whether it moves a trend between strengths, over seeds, is "
            "not measured.")


def spectral_clip_line(name: str = "spectral_clip_cpu.json", results: Path | None = None) -> str:
    """What benchmarks/spectral_clip.py clipped, and how closely the two methods agree."""
    clip = load(name, results)
    return (f"`{name}`: {machine(clip)}; the {clip['layers']} convolutions of a {clip['weights']} "
            f"(its kernels scaled by {clip['scale']} so that every layer is above the clip, as after an epoch of SGD) "
            f"clipped to {clip['clip']:g}, median of {clip['rounds']} interleaved rounds; "
            f"the clipped kernels agree within {clip['max_kernel_difference']:.1e}.")


def spectrum_line(name: str = "spectrum_cpu.json", results: Path | None = None) -> str:
    """The time of all singular values of ResNet-56 by the Fourier method, and its speed-up over the dense SVD."""
    spectrum = load(name, results)
    return (f"`{name}`: {machine(spectrum)}. All {spectrum['n_singular_values']:,} singular values of "
            f"ResNet-56's layers at their true input sizes take {spectrum['fourier_true_sizes_s']:.1f} s by the Fourier "
            f"method; at the side-by-side size the whole network is {spectrum['net_ratio']:.0f}x faster than the dense SVD.")


def sharing_line(matrix: pd.DataFrame) -> str:
    """Several runs on one GPU, in processes or on streams, against one graphed bf16 run (`gpu_step_matrix`)."""
    graphed = matrix[(matrix.step == "CUDA graph") & (matrix.precision == "bf16")]
    one = graphed[graphed["runs per GPU"] == 1].set_index("network")["images/s per GPU"]
    shared = graphed[graphed["runs per GPU"] > 1].groupby(["network", "sharing"])["images/s per GPU"].max().unstack()
    gain = shared.div(one, axis=0)
    return (f"Sharing the GPU, against one graphed bf16 run, at the best number of runs of each network: runs in "
            f"separate processes {span(gain.processes)} (they time-slice the GPU), runs on streams of one process "
            f"{span(gain.streams)} (their kernels overlap).")


def plan_line(plan: dict) -> str:
    """The `gpu` tier's plan a session sized (benchmarks/gpu_tier_plan.py's gpu_tier_plan.json)."""
    rates = plan["single_run_rates"]
    return (f"The plan: {plan['arch']} with the {plan['precision']} {plan['step']} step (bf16 "
            f"{rates['bf16'] / rates['fp32']:.2f}x faster than fp32 for one run), {plan['rate_images_per_s_per_gpu']:,.0f} "
            f"images/s per GPU with four runs in separate processes, an epoch of the sweep "
            f"{plan['sweep_epoch_seconds']:.1f} s: {plan['epochs']} epochs (milestones {plan['milestones']}) in "
            f"{plan['seconds_available']:.0f} s with {plan['reserve_seconds']:.0f} s kept for evaluation and analysis.")


def stack_choice_line(choice: dict) -> str:
    """Whether a session trained the tier's runs as stacks (gpu_tier_plan.py --stack's gpu_stack_choice.json)."""
    stacked, streams = choice["stacked_images_per_s_per_gpu"], choice["streams_images_per_s_per_gpu"]
    rates = (f"{choice['runs']} {choice['arch']} runs stacked {stacked:,.0f} images/s per GPU against {streams:,.0f} "
             "on streams" if stacked and streams else "the stacked or the streams cell was not measured")
    cells = Path(choice.get("cells", ""))
    where = (f" (the cells of `{cells.parent.name}/{cells.name}`, an earlier session's)" if SESSION.fullmatch(cells.parent.name)
             else "")
    trained = f"in stacks of {choice['stack']}" if choice["stack"] > 1 else "one per process"
    tests = choice.get("tests_exit", 0)
    if tests == 0:
        return f"The stack: {rates}{where}, so the runs trained {trained}."
    failed = "ran out of time" if tests in (124, 137) else f"did not all pass (exit {tests})"
    if stacked and streams and stacked > streams:
        return f"The stack: {rates}{where}; the session's CUDA tests {failed}, so the runs trained {trained}."
    return f"The stack: {rates}{where}, so the runs trained {trained} (the session's CUDA tests {failed} as well)."


def session_line(folder: str, results: Path | None = None) -> str:
    """A lent GPU session in a paragraph: its GPU, driver, torch and seconds, the tier's plan it sized
    (or that it sized none), its stack choice, the chip's ceiling it measured, its notes.md (what a reader
    needs to know of it that its logs do not say) and its CUDA tests."""
    root, total = Path(results or RESULTS) / folder, session_total(folder, results)
    ended = (f"{total['seconds']} s in all, exit {total['exit']}" if total["seconds"] is not None
             else "cut off before its last line")
    parts = [f"`{folder}/`: {total['gpu']} (driver {total['driver']}, {total['memory_gib']:.0f} GiB), torch "
             f"{total['torch']}, {ended}."]
    parts.append(plan_line(load(f"{folder}/gpu_tier_plan.json", results)) if (root / "gpu_tier_plan.json").exists()
                 else "No plan was sized (that needs this session's step matrix and an empty store), so the tier "
                 "kept the `gpu` profile's epochs and precision.")
    if (root / "gpu_stack_choice.json").exists():
        parts.append(stack_choice_line(load(f"{folder}/gpu_stack_choice.json", results)))
    if (root / f"gpu_ceiling_{session_gpu(folder)}.json").exists():
        top = load(f"{folder}/gpu_ceiling_{session_gpu(folder)}.json", results)
        parts.append(f"The chip's ceiling: a bf16 matrix product of {top['n']}x{top['n']} matrices ran "
                     f"{top['bf16_matmul_tflops']:,.0f} TFLOP/s.")
    if (root / "notes.md").exists():
        parts.append((root / "notes.md").read_text().strip())
    parts.append(f"The CUDA tests: {tests_summary(folder, results)}.")
    return " ".join(parts)


def stacked_gpus(results: Path | None = None) -> list[str]:
    """The GPUs some filed session measured the stacked cells on (gpu_step_stacked_<gpu>.json), in
    the order of their newest such session."""
    return list(newest_files("gpu_step_stacked", results))


def stacked_line(results: Path | None = None) -> str:
    """The stacked runs against as many on streams, graphed, per GPU, from the newest session of each
    GPU that measured them; where none did, the CPU measurement (gpu_step_stacked_cpu.json) and that
    the GPU's is to come."""
    lines = []
    for name in newest_files("gpu_step_stacked", results).values():
        t = step_cells(name, results)
        t = t[t.step == "CUDA graph"]
        pairs = t[t.sharing.isin(["stacked", "streams"])].pivot_table(
            index=["network", "runs per GPU"], columns="sharing", values="images/s per GPU", aggfunc="max")
        pairs = pairs.dropna() if {"stacked", "streams"} <= set(pairs.columns) else pairs.iloc[0:0]
        cells = "; ".join(f"{net}, {n} runs: stacked {r.stacked:,.0f} against streams {r.streams:,.0f} images/s per "
                          f"GPU ({r.stacked / r.streams:.2f}x)" for (net, n), r in pairs.iterrows())
        lines.append(f"`{name}`: {machine(load(name, results))}. Graphed, per GPU: "
                     f"{cells or 'no pair of cells was measured'}.")
    if lines:
        return " ".join(lines)
    cpu = step_cells("gpu_step_stacked_cpu.json", results)
    alone = cpu[(cpu["runs per GPU"] == 1) & (cpu.precision == "bf16")]["images/s per GPU"].max()
    stacks = cpu[cpu.sharing == "stacked"].groupby("runs per GPU")["images/s per GPU"].max()
    rates = ", ".join(f"{n} stacked runs {v:,.0f} images/s" for n, v in stacks.items())
    return (f"No GPU session has measured the stack yet: `benchmarks/gpu_session.sh` measures it beside as many runs on "
            f"streams and trains the `gpu` tier that way where it is the faster. On a CPU it does not pay "
            f"(`gpu_step_stacked_cpu.json`: {machine(load('gpu_step_stacked_cpu.json', results))}): {rates}, against "
            f"{alone:,.0f} for one run alone.")


def store_log_line(path: Path | str, summary: dict) -> str:
    """A run store's build log in one line: its date, GPU, runs side by side, runs trained and seconds (`build_summary`)."""
    return (f"The store's build log (`{path}`, {summary['date']}, {summary['gpu']}, "
            f"{summary['workers']} runs side by side): {summary['trained']} runs in {summary['wall_s']:.0f} s.")


def store_built_line(path: Path) -> str:
    """How the run store the page reads was built: invocations, runs, hours and CPU models of its build log."""
    if not path.exists():
        return f"`{path}` does not exist: this store was not built by `arreg prepare` or `arreg book`."
    built = build_summary(path)
    root = Path(__file__).resolve().parents[1]
    shown = path.resolve().relative_to(root) if path.resolve().is_relative_to(root) else path.name
    return (f"`{shown}`: {len(built['sessions'])} invocations, {built['trained']} runs trained, "
            f"{built['wall_s'] / 3600:.2f} h of wall time in all, on {', '.join(built['cpu_models'])}.")


def paper_cost_intro(cells: pd.DataFrame, name: str = "paper_profile_cost_h200.json", results: Path | None = None) -> str:
    """The measured parts of the `paper` profile's cost: an epoch of ResNet-56, a spectral clipping,
    and the graphed step's speed-up over the eager step (`graph_speedup` of `cells`)."""
    cost, speed = load(name, results), graph_speedup(cells)
    how = {p: sharing_text(s["runs per GPU"], s["sharing"]) for p, s in speed.items()}
    return (f"`{name}`: {machine(cost)}; ResNet-56 at eps 8 in fp32 "
            f"{cost['meta']['seconds_per_50k_epoch_fp32']:.1f} s per epoch of 50,000 images, one spectral clipping of its "
            f"{cost['meta']['spectral_clip_layers']} layers {cost['meta']['spectral_clip_seconds']:.1f} s. The graphed step's "
            f"speed-up over the eager step, ResNet-56 per GPU ({', '.join(f'`{f}`' for f in dict.fromkeys(cells.file))}): "
            f"fp32 {speed['fp32']['speedup']:.2f}x ({how['fp32']}), bf16 {speed['bf16']['speedup']:.2f}x "
            f"({how['bf16']}), both against one run of the eager fp32 step of the same file.")


def styled(table: pd.DataFrame, precision: int = 2):
    """`table` for the page: numbers with `precision` decimals and thousands separators, no index."""
    return table.style.format(precision=precision, thousands=",").hide(axis="index")
