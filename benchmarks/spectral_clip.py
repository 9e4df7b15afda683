"""Cost of spectral clipping (appendix B.4.2; `arreg_core.spectral_clip`) against the clipping it
replaced, side by side in one process: the SVD of every block of the layer's operator (both of
each conjugate pair), repeated clip-and-truncate as Sedghi et al. (2019).

Every conv layer of a network is clipped to `--clip` by both, from the same weights, in
interleaved rounds; the ratio of the medians is printed with the largest difference of the
clipped kernels and whether the repetitions agree. The weights are a random He-normal network
(`--arch`, `--width`: the `cpu` profile's resnet8 x2 by default) or a trained run's (`--run`: a
run folder that still has its checkpoint; committed stores keep artifacts only), scaled by
`--scale` so that every layer is above the clip as after an epoch of SGD.

    python benchmarks/spectral_clip.py --clip 1 --json benchmarks/results/spectral_clip_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

try:  # run as a script: benchmarks/ is on sys.path
    from common import machine_info
except ImportError:  # imported as benchmarks.spectral_clip (tests)
    from benchmarks.common import machine_info

from arreg_core.models import build_model, weight_layers
from arreg_core.runs import load_run
from arreg_core.spectral_clip import clip_conv_spectral_norm
from arreg_core.spectrum import _conv_geometry, _hw, _support, conv_blocks, conv_from_blocks, transfer_matrices


@torch.no_grad()
def every_block_svd_clip(weight: torch.Tensor, input_hw, c: float, stride: int = 1, tol: float = 0.05,
                         max_repeats: int = 50) -> tuple[torch.Tensor, int]:
    """The reference: clip-and-truncate with the full SVD of every block of the operator."""
    hw = _hw(input_hw)
    rows, cols = _support(weight, hw)
    w = weight.detach()
    for repeats in range(max_repeats + 1):
        blocks = conv_blocks(transfer_matrices(w, hw), stride)
        u, s, vh = torch.linalg.svd(blocks, full_matrices=False)
        if s.max() <= c * (1 + tol):
            return w, repeats
        clipped = u @ (s.clamp(max=c).to(u.dtype)[..., None] * vh)
        torus = torch.fft.ifft2(conv_from_blocks(clipped, stride), dim=(0, 1)).real
        w = torus[rows[:, None], cols[None, :]].permute(2, 3, 0, 1).contiguous().to(weight.dtype)
    raise RuntimeError(f"the reference clipping to {c} did not converge in {max_repeats} repeats")


def conv_layers(model: nn.Module, input_size: int) -> list[tuple[torch.Tensor, tuple, int]]:
    """(kernel, input size, stride) of every conv layer."""
    return [(m.weight.detach().clone(), hw, _conv_geometry(m))
            for _, m, hw in weight_layers(model, input_size) if isinstance(m, nn.Conv2d)]


def clip_all(clip, layers, c: float) -> tuple[float, list]:
    """Seconds to clip every layer with `clip`, and the (kernel, repetitions) of each."""
    start = time.perf_counter()
    out = [clip(w, hw, c, stride) for w, hw, stride in layers]
    return time.perf_counter() - start, out


def compare(layers, c: float, rounds: int) -> dict:
    """Both clippings of the same layers in interleaved rounds: medians, ratio, agreement."""
    times = {"every block, SVD": [], "one of each pair, eigh": []}
    for _ in range(rounds):
        seconds, reference = clip_all(every_block_svd_clip, layers, c)
        times["every block, SVD"].append(seconds)
        seconds, ours = clip_all(clip_conv_spectral_norm, layers, c)
        times["one of each pair, eigh"].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"clip": c, "layers": len(layers), "rounds": rounds, "seconds": medians,
            "speedup": medians["every block, SVD"] / medians["one of each pair, eigh"],
            "repeats_reference": [r for _, r in reference], "repeats": [r for _, r in ours],
            "max_kernel_difference": max((a - b).abs().max().item() for (a, _), (b, _) in zip(reference, ours)),
            "max_kernel_entry": max(w.abs().max().item() for w, _, _ in layers)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="a trained run's folder (default: a random He-normal network)")
    p.add_argument("--arch", default="resnet8", help="the random network's architecture (without --run)")
    p.add_argument("--width", type=int, default=2, help="the random network's width multiplier (without --run)")
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--scale", type=float, default=1.08, help="multiply the conv kernels by this first")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.run:
        run = load_run(args.run)
        model, input_size, source = run.load_model("cpu"), 32, str(args.run)
    else:
        model = build_model(args.arch, 10, args.width)
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, generator=torch.Generator().manual_seed(0))
        input_size, source = 32, f"random He-normal {args.arch} x{args.width}"
    layers = [(w * args.scale, hw, stride) for w, hw, stride in conv_layers(model, input_size)]
    result = {"machine": machine_info(), "weights": source, "scale": args.scale, **compare(layers, args.clip, args.rounds)}
    s = result["seconds"]
    print(f"{source}: {result['layers']} conv layers clipped to {args.clip} (x{args.scale} first), "
          f"{args.threads} thread(s), median of {args.rounds} interleaved rounds")
    print(f"  every block, SVD: {s['every block, SVD']:.2f} s   one of each pair, eigh: "
          f"{s['one of each pair, eigh']:.2f} s   speedup {result['speedup']:.2f}x")
    print(f"  repetitions agree: {result['repeats'] == result['repeats_reference']} {result['repeats']}; "
          f"largest kernel difference {result['max_kernel_difference']:.1e} (largest entry {result['max_kernel_entry']:.2f})")
    print(f"  on {result['machine']['cpu_model']}, torch {result['machine']['torch']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
