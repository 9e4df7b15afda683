"""A from-empty rebuild of a profile's run store, checked against the committed store (training
on the CPU is deterministic), and its wall time, which the Performance and cost chapter shows.

Rebuild into a scratch store (`ARREG_RUNS=<scratch> arreg book --profile cpu --fresh`, resumed
with the same command across sessions), then:

    python benchmarks/rebuild_check.py <scratch store> results/cpu/runs \\
        --json benchmarks/results/cpu_rebuild.json --copy-log benchmarks/results/cpu_rebuild_prepare_log.jsonl

Every run of the committed store must be in the rebuild with the same result
(`analysis.result_differences`: the metrics but `train_seconds`, bit-identical analysis arrays,
the artifacts' meta but the checkpoint's sha256, which stores each epoch's wall seconds). The wall
time comes from the rebuild's build log (`executors.store_wall_time`: invocations added up, one
killed at a session's end counting to its last heartbeat); the seconds to execute the notebooks
and render, which the log does not hold, are passed with --render-s.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from arreg_core.analysis import result_differences
from arreg_core.executors import store_wall_time
from arreg_core.runs import PREPARE_LOG

try:
    from common import machine_info
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info


def run_differences(rebuilt: Path, committed: Path) -> tuple[list[str], int]:
    """`analysis.result_differences` of the committed run against its rebuild; "not rebuilt" if unfinished."""
    if not (rebuilt / "metrics.json").is_file():
        return ["not rebuilt"], 0
    return result_differences(committed, rebuilt)


def compare_stores(rebuilt: Path, committed: Path) -> dict:
    """Every committed run against its rebuild: {run: differences}, with counts."""
    runs = sorted(d.name for d in committed.iterdir() if (d / "metrics.json").is_file())
    result, arrays = {}, 0
    for run in runs:
        result[run], n = run_differences(rebuilt / run, committed / run)
        arrays += n
    return {"runs": len(runs), "identical": sum(not d for d in result.values()), "arrays_compared": arrays,
            "differences": {run: d for run, d in result.items() if d}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rebuilt", type=Path, help="the scratch store the rebuild wrote")
    parser.add_argument("committed", type=Path, help="the committed store, e.g. results/cpu/runs")
    parser.add_argument("--render-s", type=float, default=None,
                        help="seconds the last invocation spent executing the notebooks and rendering")
    parser.add_argument("--note", default="", help="what else ran beside the rebuild, stated with the number")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--copy-log", type=Path, default=None, help="copy the rebuild's build log here")
    args = parser.parse_args(argv)

    comparison = compare_stores(args.rebuilt, args.committed)
    wall = store_wall_time(args.rebuilt / PREPARE_LOG)
    total = wall["wall_s"] + (args.render_s or 0.0)
    result = {"machine": machine_info(), "build_log": wall, "render_s": args.render_s,
              "total_wall_s": round(total, 1), "note": args.note, **comparison}
    print(f"{comparison['identical']} of {comparison['runs']} runs identical ({comparison['arrays_compared']} arrays "
          f"bit for bit); differ: {sorted(comparison['differences']) or 'none'}")
    print(f"build log: {len(wall['sessions'])} invocations, {wall['wall_s'] / 3600:.2f} h, {wall['trained']} runs "
          f"trained on {'; '.join(wall['cpu_models'])}; with the render: {total / 3600:.2f} h")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.copy_log:
        shutil.copyfile(args.rebuilt / PREPARE_LOG, args.copy_log)
    return result


if __name__ == "__main__":
    main()
