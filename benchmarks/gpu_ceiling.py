"""The chip's own ceiling for the Performance chapter's arithmetic rates: the TFLOP/s of a large bf16
matrix product (n x n by n x n, random data), the rate no training step can beat: products back to
back for `--seconds` after three warm-ups, in `--windows` windows, the best window's rate (the
others are kept in the file). benchmarks/gpu_session.sh measures it first.

    python benchmarks/gpu_ceiling.py --json OUT/gpu_ceiling_h200.json
    python benchmarks/gpu_ceiling.py --device cpu --n 64 --seconds 0.05   # the CPU-side check (tests)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from arreg_core.device import prepare_device

try:
    from common import machine_info
    from pgd_at_throughput import synchronize
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info
    from benchmarks.pgd_at_throughput import synchronize


def matmul_tflops(device: torch.device, n: int, seconds: float, windows: int) -> list[float]:
    """TFLOP/s of n x n by n x n bf16 products (2 n^3 FLOPs each) on `device`, one per window of
    at least `seconds` of products back to back."""
    g = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    rates, batch = [], 1
    while len(rates) < windows:
        start = time.perf_counter()
        for _ in range(batch):
            a @ b
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed < seconds:  # too short to time well: a longer window
            batch *= 2
            continue
        rates.append(2 * n**3 * batch / elapsed / 1e12)
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=1.0, help="the least length of a timed window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = prepare_device(args.device)
    rates = matmul_tflops(device, args.n, args.seconds, args.windows)
    out = {"meta": {**machine_info(), "device": str(device)}, "n": args.n, "seconds_per_window": args.seconds,
           "windows_tflops": rates, "bf16_matmul_tflops": max(rates)}
    print(f"[gpu_ceiling] {args.n}^3 bf16 matrix product: {out['bf16_matmul_tflops']:.1f} TFLOP/s", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
