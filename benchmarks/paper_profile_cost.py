"""Device-hours of the whole `paper` profile (every run of every notebook), from measurements.

1. Trains a few epochs of the `paper` profile's ResNet-56 at eps 8 (PGD-10, batch 256, pad-crop-flip,
   fp32: the paper's settings, appendix B.1) on the full cifar10-jpeg training set (50,000 images,
   the size and shape of CIFAR-10/100) and records seconds per epoch (the first epoch is warm-up).
2. Times the training step of every other kind of run the profile holds (ResNet-110, FGSM, CIFAR-100's
   100 classes, WRN-50-2 on Tiny-ImageNet's 56x56 crops) on generated batches of the right shape, in
   fp32 and with the fast path (bf16 autocast + channels_last), relative to the kind of step 1.
3. Times one spectral clipping (appendix B.4.2) of the ResNet-56 of step 1: the spectral-norm runs
   clip after every epoch.
4. Sums epochs x seconds per epoch (+ clipping) over every run: the estimate, by experiment.
Evaluation and the analysis pieces (margins, spectra, loss variation, the Theorem 3.1 bound) are not
included: they cost minutes per run, not hours.

    python benchmarks/paper_profile_cost.py --json benchmarks/results/paper_profile_cost_h200.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch

from arreg_core.data import ImageData, load_data
from arreg_core.device import prepare_device
from arreg_core.profiles import EXPERIMENTS, load_profile
from arreg_core.spectral_clip import clip_model_spectral_norm
from arreg_core.train import TrainConfig, build_model_for, build_optimizer, fit, train_epoch

try:
    from common import machine_info, nonzero_classifier
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info, nonzero_classifier

# training images, image side and classes of the data sets the paper profile uses
SHAPES = {"cifar10": (50_000, 32, 10), "cifar100": (50_000, 32, 100), "cifar10-jpeg": (50_000, 32, 10),
          "tinyimagenet": (100_000, 64, 200)}
FAST = {"precision": "bf16", "channels_last": True}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_epochs(config: TrainConfig, data: ImageData, device, epochs: int):
    """Train `epochs` epochs of `config`; returns (seconds of each epoch, the trained model)."""
    config = dataclasses.replace(config, epochs=epochs, milestones=())
    model, history = fit(config, data, device, progress=False)
    return [row["seconds"] for row in history], model


def kind(config: TrainConfig) -> tuple:
    """What sets a run's cost per image."""
    n, size, classes = SHAPES[config.dataset]
    steps = {"none": 0, "fgsm": 1, "pgd": config.attack_steps}[config.method]
    return (config.arch, config.width, config.method, steps, size, classes, config.batch_size)


def step_seconds(config: TrainConfig, device, batches: int, batch_size: int | None, precision: str,
                 channels_last: bool) -> float:
    """Seconds per image of `config`'s training step on generated data of its shape (after a warm-up)."""
    n, size, classes = SHAPES[config.dataset]
    bs = batch_size or config.batch_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (bs * batches, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (bs * batches,), generator=g)
    augment, view = ("random_resized_crop", "center_crop") if config.dataset == "tinyimagenet" else ("crop_flip", "none")
    data = ImageData("generated", x, y, x[:1], y[:1], classes, augment, view).to(device)
    config = dataclasses.replace(config, batch_size=bs, precision=precision)
    torch.manual_seed(0)
    model = build_model_for(config, data).to(device, memory_format=torch.channels_last if channels_last
                                              else torch.contiguous_format)
    nonzero_classifier(model)
    optimizer, _ = build_optimizer(config, model)
    train_epoch(model, optimizer, data, config, 0, device, channels_last, progress=False)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    train_epoch(model, optimizer, data, config, 1, device, channels_last, progress=False)
    synchronize(device)
    return (time.perf_counter() - start) / len(y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs of step 1 (the first is warm-up)")
    parser.add_argument("--n-train", type=int, default=None, help="images of step 1 (default: all 50,000)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile's batch (tests)")
    parser.add_argument("--probe-batches", type=int, default=4, help="batches per step timing of step 2")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--data-root", default=None, help="folder of cifar10-jpeg.tar.gz (default: $ARREG_DATA)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = prepare_device(args.device)

    runs = [(exp, c) for exp in args.experiments for c in load_profile("paper").configs[exp]]
    reference = next(c for c in load_profile("paper").configs["ar_sweep"] if c.dataset == "cifar10" and c.eps == 8)
    reference = dataclasses.replace(reference, dataset="cifar10-jpeg",
                                    batch_size=args.batch_size or reference.batch_size)
    data = load_data("cifar10-jpeg", root=args.data_root, n_train=args.n_train, n_test=10)
    seconds, model = measured_epochs(reference, data, device, args.epochs)
    steady = seconds[1:] or seconds
    epoch_s = sum(steady) / len(steady) * SHAPES["cifar10"][0] / len(data.y_train)  # per 50,000 images
    print(f"[paper_profile_cost] ResNet-56 PGD-10 eps 8, epochs of {len(data.y_train)} images: "
          f"{[round(s, 2) for s in seconds]} s -> {epoch_s:.1f} s per 50,000-image epoch", flush=True)
    synchronize(device)
    start = time.perf_counter()
    clipped_layers = len(clip_model_spectral_norm(model, 1.0, data.image_size))
    synchronize(device)
    clip_s = time.perf_counter() - start
    print(f"[paper_profile_cost] one spectral clipping of ResNet-56 to norm 1: {clip_s:.1f} s", flush=True)

    probes = {}
    for _, config in runs + [("reference", reference)]:
        k = kind(config)
        if k in probes:
            continue
        probes[k] = {p: step_seconds(config, device, args.probe_batches, args.batch_size, **v)
                     for p, v in (("fp32", {"precision": "fp32", "channels_last": False}), ("fast", FAST))}
        print(f"[paper_profile_cost] step of {k}: {probes[k]['fp32'] * 1e3:.3f} ms/image fp32, "
              f"{probes[k]['fast'] * 1e3:.3f} fast", flush=True)
    ref = probes[kind(reference)]["fp32"]
    rows = []
    for exp, config in runs:
        n = SHAPES[config.dataset][0]
        clipping = clip_s * config.epochs if config.spectral_norm is not None else 0.0
        row = {"experiment": exp, "dataset": config.dataset, "arch": config.arch, "method": config.method,
               "eps": config.eps, "spectral_norm": config.spectral_norm, "epochs": config.epochs}
        for p in ("fp32", "fast"):
            per_epoch = epoch_s * probes[kind(config)][p] / ref * n / SHAPES["cifar10"][0]
            row[f"hours_{p}"] = (per_epoch * config.epochs + clipping) / 3600
        rows.append(row)
    table = pd.DataFrame(rows)
    by_exp = table.groupby("experiment")[["hours_fp32", "hours_fast"]].sum()
    by_exp.loc["total"] = by_exp.sum()
    print(table.to_string(index=False, float_format="{:.2f}".format))
    print(by_exp.to_string(float_format="{:.1f}".format))
    if args.json:
        result = {"meta": {**machine_info(), "device": str(device), "measured_images": len(data.y_train),
                           "measured_epoch_seconds": seconds, "seconds_per_50k_epoch_fp32": epoch_s,
                           "spectral_clip_seconds": clip_s, "spectral_clip_layers": clipped_layers,
                           "fast": FAST, "excluded": "evaluation and analysis pieces"},
                  "probes_ms_per_image": [{"kind": list(k), **{p: v * 1e3 for p, v in t.items()}}
                                          for k, t in probes.items()],
                  "runs": rows, "hours_by_experiment": by_exp.reset_index().to_dict("records")}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return by_exp


if __name__ == "__main__":
    main()
