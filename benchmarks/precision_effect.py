"""Does bf16 training change what the book shows, beyond the seed-to-seed spread?

The `cpu` profile trains in bf16 autocast (the fast path). This script trains the same
configuration in fp32 (the paper's arithmetic; one seed, default 0) into a scratch store and sets
its metrics beside the profile's bf16 runs of that strength, one per seed: the fp32 value, the
bf16 mean and standard deviation over seeds, and how many bf16 standard deviations apart they are.

    python benchmarks/precision_effect.py --profile cpu --eps 8 --json benchmarks/results/precision_effect_cpu.json

The bf16 runs must be in the profile's store (`arreg prepare --profile cpu`); the fp32 run
trains here (about 2.5x the bf16 run's time on a CPU with AMX-BF16).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import pandas as pd
import torch

from arreg_core.experiments import Experiments
from arreg_core.runs import get_or_train, load_run, run_path

try:
    from common import machine_info
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info

METRICS = ("train_acc", "test_acc", "gap_acc", "train_loss", "test_loss", "gap_loss", "pgd_acc")


def compare(fp32: dict, bf16: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: the fp32 value, the bf16 runs' mean and std over seeds, and the
    distance in bf16 standard deviations (NaN with a single bf16 seed)."""
    rows = []
    for metric in METRICS:
        mean, std = bf16[metric].mean(), bf16[metric].std(ddof=1)
        rows.append({"metric": metric, "fp32": fp32[metric], "bf16 mean": mean, "bf16 std": std,
                     "bf16 seeds": len(bf16), "difference / std": (fp32[metric] - mean) / std if std > 0 else float("nan")})
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--eps", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs-dir", default="/tmp/arreg-precision", help="scratch store of the fp32 run")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    ex = Experiments.from_environment(a.profile, eps=[a.eps])
    configs = ex.configs("ar_sweep")
    stored = [load_run(run_path(c, ex.runs_dir)) for c in configs]
    if configs[0].precision != "bf16" or any(r is None for r in stored):
        raise SystemExit(f"profile {a.profile} lacks bf16 runs at eps {a.eps:g} in {ex.runs_dir}: "
                         f"run `arreg prepare --profile {a.profile}` first")
    bf16 = pd.DataFrame([{"run": r.path.name, "seed": r.config.seed, **r.metrics} for r in stored])
    config = next(c for c in configs if c.seed == a.seed)
    start = time.perf_counter()
    run = get_or_train(dataclasses.replace(config, precision="fp32"), a.runs_dir, device="cpu",
                       data_root=ex.data_root, progress=False, **ex.profile.step_options)
    table = compare(run.metrics, bf16)
    print(f"{a.profile}, eps {a.eps:g}: fp32 (seed {a.seed}) vs bf16 ({len(bf16)} seeds)")
    print(table.to_string(index=False, float_format="{:.3f}".format))
    if a.json:
        result = {"machine": machine_info(), "profile": a.profile, "eps": a.eps, "seed": a.seed,
                  "fp32_wall_s": round(time.perf_counter() - start, 1), "fp32_run": run.path.name,
                  "bf16_runs": list(bf16["run"]), "comparison": table.to_dict(orient="records")}
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
