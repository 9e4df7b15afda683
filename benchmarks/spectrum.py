"""Cost and accuracy of the Fourier singular values (Sedghi et al., 2019) against the dense
operator's SVD, on a CIFAR ResNet with random He-normal weights (a freshly built Fixup net has
zero layers, whose spectra are trivial).

1. Fourier method, every weight layer at its true input size (32x32 CIFAR input).
2. Side by side at `--dense-max-size` (every conv evaluated at min(true size, that size)): dense
   SVD (matrix c*h*w square-ish; 16384^2 at 32x32x16 is infeasible) vs Fourier on one layer per
   distinct (shape, stride) group, timed in the same run; totals extrapolated by group counts.
3. Circular (Fourier) vs real zero-padded layer (dense SVD) spectra, one layer per group.

    python benchmarks/spectrum.py --arch resnet56 --dense-max-size 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pandas as pd
import torch
from torch import nn

from arreg_core.models import build_model, weight_layers
from arreg_core.runs import load_run
from arreg_core.spectrum import (circular_vs_zero_padding_gap, conv_operator_matrix, conv_singular_values,
                                 layer_singular_values, linear_singular_values)


def timed(fn, repeats=1):
    """(result, median seconds over `repeats` calls)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def random_model(arch: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch, 10)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
    return model.eval()


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet56")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--dense-max-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own choice)")
    ap.add_argument("--run", default=None, help="a trained run's directory (with its checkpoint): measure its "
                                                    "layers instead of a random --arch")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        run = load_run(args.run)
        model, args.arch = run.load_model("cpu"), f"{run.config.arch} x{run.config.width} ({run.path.name})"
    else:
        model = random_model(args.arch, args.seed)
    weights = "trained" if args.run else "random He-normal weights"
    layers = weight_layers(model, args.input_size)

    # 1. Fourier, true sizes
    full, t_full = timed(lambda: layer_singular_values(model, args.input_size), args.repeats)
    n_values = sum(r["n"] for r in full)
    print(f"{args.arch} ({weights}), {len(full)} weight layers, input {args.input_size}x{args.input_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"1. Fourier, all layers at true input sizes: {t_full:.3f} s (median of {args.repeats}), {n_values} singular values")

    # 2./3. one layer per (shape, stride) group, at min(true size, dense-max-size)
    groups: dict[tuple, list] = {}
    for name, module, hw in layers:
        if isinstance(module, nn.Conv2d):
            size = min(hw[0], args.dense_max_size)
            groups.setdefault((tuple(module.weight.shape), module.stride[0], size), []).append(name)
        else:
            groups.setdefault((tuple(module.weight.shape), None, None), []).append(name)
    modules = dict(model.named_modules())
    rows, gaps = [], []
    for (shape, stride, size), names in groups.items():
        w = modules[names[0]].weight
        if stride is None:
            fourier, t_f = timed(lambda: linear_singular_values(w), args.repeats)
            dense, t_d = fourier, t_f
            t_build = 0.0
        else:
            fourier, t_f = timed(lambda: conv_singular_values(w, size, stride), args.repeats)
            mat, t_build = timed(lambda: conv_operator_matrix(w, size, stride))
            dense, t_d = timed(lambda: torch.linalg.svdvals(mat))
            gap = circular_vs_zero_padding_gap(w, size, stride)
            gaps.append({"layer": names[0], "shape": "x".join(map(str, shape)), "stride": stride,
                         "size": size, **{k: gap[k] for k in ("n", "top_rel_diff", "std_rel_diff", "max_abs_diff")}})
        rows.append({"layer": names[0], "count": len(names), "shape": "x".join(map(str, shape)), "stride": stride,
                     "size": size, "dense_dims": "-" if stride is None else f"{shape[0] * (size // stride) ** 2}x{shape[1] * size ** 2}",
                     "fourier_s": t_f, "dense_build_s": t_build, "dense_svd_s": t_d, "ratio": (t_build + t_d) / t_f,
                     "max_rel_err": ((fourier - dense).abs().max() / dense.max()).item()})
    table = pd.DataFrame(rows)
    tot_f = (table["fourier_s"] * table["count"]).sum()
    tot_d = ((table["dense_build_s"] + table["dense_svd_s"]) * table["count"]).sum()
    pd.set_option("display.width", 200)
    print(f"\n2. Fourier vs dense SVD, one layer per group, convs at min(true size, {args.dense_max_size}) "
          f"(dense float32, same run):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"   whole net at these sizes (group time x count): Fourier {tot_f:.3f} s, dense {tot_d:.1f} s, "
          f"ratio dense/Fourier {tot_d / tot_f:.0f}x")
    gap_table = pd.DataFrame(gaps)
    print("\n3. circular (Fourier) vs zero-padded (dense) spectra, rel diff = (circular - zeros) / zeros:")
    print(gap_table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    if args.json:
        out = {"arch": args.arch, "weights": weights, "seed": args.seed,
               "threads": torch.get_num_threads(), "torch": torch.__version__, "input_size": args.input_size,
               "fourier_true_sizes_s": t_full, "n_singular_values": n_values, "dense_max_size": args.dense_max_size,
               "groups": rows, "net_fourier_s": tot_f, "net_dense_s": tot_d, "net_ratio": tot_d / tot_f,
               "padding_gap": gaps}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
