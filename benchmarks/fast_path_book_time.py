"""One profile's book built from empty twice on the same machine, without and with the fast path
(bf16 autocast + channels_last), so that the speed-up is measured on one CPU model: each build's wall
time from its build log, and every run's training seconds side by side, the runs paired by their
config but the training precision. The results of each pair are set side by side too (one seed:
`benchmarks/precision_effect.py` measures bf16 against the seed-to-seed spread).

    ARREG_RUNS=<before> arreg book --profile cpu-v1 --fresh -p precision=fp32 -p channels_last=false
    ARREG_RUNS=<after>  arreg book --profile cpu-v1 --fresh -p precision=bf16 -p channels_last=true
    python benchmarks/fast_path_book_time.py <before> <after> --before-render-s S --after-render-s S \\
        --json benchmarks/results/cpu_v1_fast_path_book_time.json

A build resumed across sessions is added up by `executors.store_wall_time` (an invocation killed
at a session's end counts to its last heartbeat); the seconds to execute the notebooks and render,
which the log does not hold, are passed per build.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arreg_core.executors import store_wall_time
from arreg_core.runs import PREPARE_LOG, read_json

try:
    from common import machine_info
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info

COMPARED_METRICS = ("train_acc", "test_acc", "pgd_acc", "gap_loss")  # what the book shows of a run


def finished_runs(store: Path) -> dict[str, Path]:
    """{config without the training precision: run folder} of a store's finished runs."""
    runs = {}
    for path in sorted(Path(store).iterdir()):
        if (path / "metrics.json").is_file():
            config = read_json(path / "config.json")
            config.pop("precision", None)
            runs[json.dumps(config, sort_keys=True)] = path
    return runs


def pair_runs(before: Path, after: Path) -> list[dict]:
    """Every run of `before` with its twin in `after`: training seconds and the compared metrics."""
    runs, twins = finished_runs(before), finished_runs(after)
    for store, missing in ((after, runs.keys() - twins.keys()), (before, twins.keys() - runs.keys())):
        if missing:
            raise SystemExit(f"{len(missing)} runs are not finished in {store}: finish that build first "
                             f"(resume it with the same arreg book command)")
    pairs = []
    for key, path in runs.items():
        old, new = read_json(path / "metrics.json"), read_json(twins[key] / "metrics.json")
        pairs.append({"before": path.name, "after": twins[key].name,
                      "train_s": [round(old["train_seconds"], 1), round(new["train_seconds"], 1)],
                      "speedup": round(old["train_seconds"] / new["train_seconds"], 2),
                      **{k: [old.get(k), new.get(k)] for k in COMPARED_METRICS}})
    return pairs


def build_time(store: Path, render_s: float | None) -> dict:
    """The build log's wall time (invocations added up) plus the render seconds."""
    wall = store_wall_time(Path(store) / PREPARE_LOG)
    return {**wall, "render_s": render_s, "total_wall_s": round(wall["wall_s"] + (render_s or 0.0), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the store built without the fast path (fp32)")
    parser.add_argument("after", type=Path, help="the store built with it")
    parser.add_argument("--before-render-s", type=float, default=None)
    parser.add_argument("--after-render-s", type=float, default=None)
    parser.add_argument("--note", default="", help="what else ran beside the builds, stated with the numbers")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    pairs = pair_runs(args.before, args.after)
    before, after = build_time(args.before, args.before_render_s), build_time(args.after, args.after_render_s)
    train = [sum(p["train_s"][i] for p in pairs) for i in (0, 1)]
    result = {"machine": machine_info(), "before": before, "after": after,
              "book_speedup": round(before["total_wall_s"] / after["total_wall_s"], 2),
              "train_s": [round(t, 1) for t in train], "train_speedup": round(train[0] / train[1], 2),
              "note": args.note, "runs": pairs}
    for name, build in (("before", before), ("after", after)):
        print(f"{name}: {build['total_wall_s']:.0f} s ({build['wall_s']:.0f} s build log over "
              f"{len(build['sessions'])} invocations + {build['render_s'] or 0:.0f} s render) on "
              f"{'; '.join(build['cpu_models'])}")
    print(f"book {result['book_speedup']}x; training of the {len(pairs)} runs {train[0]:.0f} -> {train[1]:.0f} s "
          f"({result['train_speedup']}x; per run {min(p['speedup'] for p in pairs)}-"
          f"{max(p['speedup'] for p in pairs)}x)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
