"""Training throughput (images per second) of clean and PGD-10 adversarial training.

For resnet20 and resnet56 at batch 128, with and without channels_last, on the CPU (threads as
torch sets them, or --threads) and on CUDA where present. Every setting is measured in the same
run, interleaved over --repeats rounds, and the median is reported, so the ratios in the table
compare like with like on a noisy machine. One "image" of PGD-10 training costs 10 attack steps
and one update (appendix B.1). The book's `cpu` profile is sized from these numbers.

    python benchmarks/train_throughput.py --json benchmarks/results/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time

import pandas as pd
import torch

from arreg_core.data import load_data
from arreg_core.device import prepare_device

try:
    from common import nonzero_classifier
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import nonzero_classifier
from arreg_core.train import TrainConfig, build_model_for, build_optimizer, train_epoch


def measure(arch, method, channels_last, device, images, batch_size, data, warm) -> float:
    """Images per second of one training pass over `images` images (after a warm-up batch)."""
    eps = 8.0 if method == "pgd" else 0.0
    config = TrainConfig(dataset="synthetic", arch=arch, method=method, eps=eps, attack_steps=10, attack_step=2,
                         batch_size=batch_size, epochs=1, n_train=images)
    model = build_model_for(config, data).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    nonzero_classifier(model)  # Fixup's zero classifier gives PGD no gradient at step 0
    optimizer, _ = build_optimizer(config, model)
    train_epoch(model, optimizer, warm, config, 0, device, channels_last, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_epoch(model, optimizer, data, config, 1, device, channels_last, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--clean-images", type=int, default=1024, help="images per clean measurement (CPU)")
    parser.add_argument("--pgd-images", type=int, default=256, help="images per PGD-10 measurement (CPU)")
    parser.add_argument("--gpu-scale", type=int, default=16, help="more images per measurement on a GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if present")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [prepare_device(d) for d in (args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))]

    rows = []
    for device in devices:
        scale = args.gpu_scale if device.type == "cuda" else 1
        images = {"none": args.clean_images * scale, "pgd": args.pgd_images * scale}
        datasets = {m: load_data("synthetic", n_train=n, n_test=10).to(device) for m, n in images.items()}
        warm = load_data("synthetic", n_train=args.batch_size, n_test=10).to(device)
        settings = list(itertools.product(args.archs, ["none", "pgd"], [False, True]))
        samples = {s: [] for s in settings}
        for _ in range(args.repeats):
            for arch, method, cl in settings:
                samples[(arch, method, cl)].append(
                    measure(arch, method, cl, device, images[method], args.batch_size, datasets[method], warm))
        for (arch, method, cl), values in samples.items():
            rows.append({"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
                         "arch": arch, "training": "clean" if method == "none" else "PGD-10",
                         "channels_last": cl, "images_per_s": statistics.median(values),
                         "min": min(values), "max": max(values), "repeats": len(values)})
    table = pd.DataFrame(rows)
    base = table[~table.channels_last].set_index(["device", "arch", "training"])["images_per_s"]
    table["speedup_channels_last"] = [r.images_per_s / base[(r.device, r.arch, r.training)] for r in table.itertuples()]
    print(table.to_string(index=False, float_format="{:.2f}".format))
    if args.json:
        meta = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                "processor": platform.processor(), "threads": torch.get_num_threads(),
                "batch_size": args.batch_size, "date": time.strftime("%Y-%m-%d")}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)
    return table


if __name__ == "__main__":
    main()
