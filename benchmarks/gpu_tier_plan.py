"""The `gpu` tier's epochs and precision, sized from the throughput measured minutes before on
the same GPU (benchmarks/gpu_step_matrix.py's JSON), so that the AR sweep's four runs (eps 0, 4,
8, 16 trained side by side, one process each) and their analyses end inside the time left.

Precision: fp32 (the paper's) unless bf16 autocast trains at least `--bf16-gain` times faster.
Rate: the ResNet-20's images per second per GPU with the step the tier uses (CUDA graph where it
was captured, else eager) and four runs sharing the GPU, where measured, else one run's. Cost of
an epoch of the sweep: 50,000 images x (3 PGD-10 runs + the standard-training run, whose step is
one forward/backward against PGD-10's eleven). Reserved: `--reserve` seconds for evaluating and
analysing the runs. Milestones at half and three quarters of the epochs (the paper's 100 and 150
of 200). Prints shell assignments (EPOCHS, MILESTONES, PRECISION) and writes the plan as JSON.

    eval "$(python benchmarks/gpu_tier_plan.py matrix.json --seconds 300 --json plan.json)"

With --stack: whether the tier's runs train as one stack (arreg_core.stacked, `arreg prepare -p
stack=K`) instead of side by side: STACK=K (one seed's three PGD runs: K=3) where the matrix's
stacked cell of 4 runs trained more images per second per GPU than 4 runs on streams, measured
side by side in the same script (the ResNet-20's graphed step), and the session's CUDA tests passed
(--tests-exit: their exit status; where it is not 0, the stacked step, whose CUDA tests check it
against the runs trained alone, is not used), else STACK=1. Streams stand for
side by side: on the H200 they beat 4 processes (benchmarks/results/gpu_session_h200_2026-12-04/gpu_step_matrix_h200.json),
so a stack that beats them beats what the tier would otherwise run.

    eval "$(python benchmarks/gpu_tier_plan.py stacked.json --stack)"
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

TRAIN_IMAGES = 50_000
SWEEP_COST = 3 + 1 / 11  # three PGD-10 runs and one standard-training run, in PGD-10 steps


def rate_of(results: list[dict], arch: str, precision: str | None, step: str, runs: int,
            sharing: tuple = ("processes", "-")) -> float | None:
    """The best images/s per GPU of the cells that match (precision None: any)."""
    rows = [r for r in results if r["arch"] == arch and precision in (None, r["precision"]) and r["step"] == step
            and r["runs_per_gpu"] == runs and r.get("sharing") in sharing]
    return max((r["images_per_s_per_gpu"] for r in rows), default=None)


def plan(matrix: dict, seconds: float, arch: str = "resnet20", reserve: float = 90.0, bf16_gain: float = 1.25,
         min_epochs: int = 2, max_epochs: int = 200) -> dict:
    results = matrix["results"]
    step = "CUDA graph" if any(r["step"] == "CUDA graph" and r["arch"] == arch for r in results) else "eager"
    fp32, bf16 = (rate_of(results, arch, p, step, 1) for p in ("fp32", "bf16"))
    if fp32 is None and bf16 is None:
        raise SystemExit(f"gpu_tier_plan: the matrix has no single-run {arch} rate")
    precision = "bf16" if bf16 and (fp32 is None or bf16 >= bf16_gain * fp32) else "fp32"
    rate = rate_of(results, arch, precision, step, 4) or (bf16 if precision == "bf16" else fp32)
    epoch_seconds = TRAIN_IMAGES * SWEEP_COST / rate
    epochs = max(min_epochs, min(max_epochs, math.floor((seconds - reserve) / epoch_seconds)))
    milestones = sorted({m for m in (epochs // 2, (3 * epochs) // 4) if 1 <= m < epochs})
    return {"arch": arch, "step": step, "precision": precision, "rate_images_per_s_per_gpu": rate,
            "single_run_rates": {"fp32": fp32, "bf16": bf16}, "sweep_epoch_seconds": epoch_seconds,
            "seconds_available": seconds, "reserve_seconds": reserve, "epochs": epochs, "milestones": milestones}


def stack_choice(matrix: dict, arch: str = "resnet20", runs: int = 4, stack: int = 3, tests_exit: int = 0) -> dict:
    """STACK (`stack` where the stacked cell of `runs` runs beats `runs` runs on streams per GPU,
    both graphed, and the session's CUDA tests passed (exit 0), among them the stacked runs' against
    the same runs trained alone; else 1) and the two rates it compared (None where a cell is missing)."""
    stacked, streams = (rate_of(matrix["results"], arch, None, "CUDA graph", runs, (sharing,))
                        for sharing in ("stacked", "streams"))
    pays = stacked is not None and streams is not None and stacked > streams
    return {"arch": arch, "runs": runs, "stacked_images_per_s_per_gpu": stacked,
            "streams_images_per_s_per_gpu": streams, "tests_exit": tests_exit,
            "stack": stack if pays and tests_exit == 0 else 1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("matrix", help="gpu_step_matrix.py's JSON")
    parser.add_argument("--seconds", type=float, help="seconds left for training and analysis")
    parser.add_argument("--stack", action="store_true", help="print STACK: stack the runs, or not (stack_choice)")
    parser.add_argument("--tests-exit", type=int, default=0,
                        help="with --stack: the exit status of the session's CUDA tests (not 0: STACK=1)")
    parser.add_argument("--reserve", type=float, default=90.0)
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.stack:
        out = {**stack_choice(json.loads(Path(args.matrix).read_text()), args.arch, tests_exit=args.tests_exit),
               "cells": args.matrix}
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"STACK={out['stack']}")
        return out
    if args.seconds is None:
        parser.error("--seconds is required (the seconds left for training and analysis)")
    out = plan(json.loads(Path(args.matrix).read_text()), args.seconds, args.arch, args.reserve)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    milestones = json.dumps(out["milestones"], separators=(",", ":"))
    print(f"EPOCHS={out['epochs']} MILESTONES='{milestones}' PRECISION={out['precision']}")
    return out


if __name__ == "__main__":
    main()
