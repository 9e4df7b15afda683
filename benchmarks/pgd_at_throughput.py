"""Images per second of one PGD-10 adversarial-training epoch: this project's training step vs
the loop a user would write from the field's usual parts.

    plain loop:   torch DataLoader over PIL images with torchvision RandomCrop(32, 4) +
                  RandomHorizontalFlip + ToTensor per sample, torchattacks.PGD(eps=8/255,
                  alpha=2/255, steps=10, random_start=True), fp32, default memory format
    this project: arreg_core.train.train_epoch (uint8 images on the device, batched crop/flip,
                  arreg_core.attacks.pgd_linf), in every combination of precision (fp32 | bf16
                  autocast), channels_last and torch.compile (none | default | reduce-overhead,
                  the last CUDA graphs of the compiled passes, for a launch-bound GPU step)

Same network (the same initial weights), data (cifar10-jpeg training images, or generated ones
where the archive is absent), batch size and attack (appendix B.1: l-inf, eps 8/255, 10 steps of
2/255, random start). Each round times the plain loop and then every variant, one epoch each, in
one process; the table gives the median over rounds and each variant's ratio to the plain loop of
the same round. torch.compile's one-time cost is timed separately (the first epoch) with the
number of epochs it takes to pay itself back.

    python benchmarks/pgd_at_throughput.py --json benchmarks/results/pgd_at_throughput_cpu.json

With `--profile NAME` the network, batch, training images, augmentation and attack (steps and
step at eps 8) are the profile's own (e.g. `cpu`: resnet8 x2, batch 32, PGD-3, 500 images), so
the choice of its precision and memory format rests on a measurement of its own runs:

    python benchmarks/pgd_at_throughput.py --profile cpu --variants fp32-cl0-c0 fp32-cl1-c0 bf16-cl0-c0 bf16-cl1-c0 \
        --json benchmarks/results/pgd_at_throughput_cpu_profile.json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from arreg_core.attacks import to_unit_scale
from arreg_core.data import DataNotFoundError, load_data
from arreg_core.device import prepare_device
from arreg_core.models import build_model
from arreg_core.train import TrainConfig, compiled, train_epoch

try:
    from common import machine_info, nonzero_classifier
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info, nonzero_classifier

EPS, ALPHA, STEPS = 8.0, 2.0, 10  # appendix B.1's training attack (0-255 scale)
PAPER_SETTING = {"width": 1, "eps": EPS, "alpha": ALPHA, "steps": STEPS, "augment": True}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PILImages(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 hands a DataLoader: one PIL image per item, transformed."""

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, transform):
        self.images = x_uint8.permute(0, 2, 3, 1).numpy()  # N x H x W x C, as CIFAR10.data
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def plain_epoch(model, optimizer, loader, device, setting=PAPER_SETTING) -> float:
    """One epoch of the plain loop; returns its seconds."""
    import torchattacks

    attack = torchattacks.PGD(model, eps=to_unit_scale(setting["eps"]), alpha=to_unit_scale(setting["alpha"]),
                              steps=setting["steps"], random_start=True)
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x_adv = attack(x, y)
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def project_epoch(step_model, optimizer, data, config, epoch, device, channels_last) -> float:
    synchronize(device)
    start = time.perf_counter()
    train_epoch(step_model, optimizer, data, config, epoch, device, channels_last, progress=False)
    synchronize(device)
    return time.perf_counter() - start


def training_data(images: int, data_root):
    """cifar10-jpeg's first `images` class-balanced training images, else generated ones."""
    try:
        return load_data("cifar10-jpeg", root=data_root, n_train=images, n_test=10), "cifar10-jpeg"
    except DataNotFoundError:
        return load_data("synthetic", n_train=images, n_test=10), "synthetic"


def initial_model(arch: str, num_classes: int, dataset: str, width: int = 1) -> torch.nn.Module:
    """A seeded network whose classifier is not zero (Fixup's zero classifier gives PGD no
    gradient at the first step, which would make the first batches unrepresentative)."""
    torch.manual_seed(0)
    return nonzero_classifier(build_model(arch, num_classes, width=width, dataset=dataset))


def profile_setting(name: str) -> tuple[dict, dict]:
    """(setting, sizes) of a profile's runs: network width, attack at eps 8 (its steps and step
    length), augmentation; and its arch, batch size and training images."""
    from arreg_core.profiles import load_profile

    config = TrainConfig.from_fields({**load_profile(name).defaults, "method": "pgd", "eps": EPS})
    setting = {"width": config.width, "eps": config.eps, "alpha": config.attack_step, "steps": config.attack_steps,
               "augment": config.augment}
    return setting, {"arch": config.arch, "batch_size": config.batch_size, "images": config.n_train}


def run(arch, device, data, dataset, batch_size, repeats, variants, plain_workers, setting=PAPER_SETTING) -> list[dict]:
    from torchvision import transforms

    config = {p: TrainConfig(dataset=dataset, arch=arch, width=setting["width"], method="pgd", eps=setting["eps"],
                             attack_steps=setting["steps"], attack_step=setting["alpha"], batch_size=batch_size,
                             epochs=1000, milestones=(), augment=setting["augment"], precision=p)
              for p in ("fp32", "bf16")}
    base = initial_model(arch, data.num_classes, dataset, setting["width"])
    crop_flip = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if setting["augment"] else []
    pipeline = transforms.Compose([*crop_flip, transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(PILImages(data.x_train, data.y_train, pipeline), batch_size=batch_size,
                                         shuffle=True, num_workers=plain_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=plain_workers > 0)
    on_device = data.to(device)

    def fresh(channels_last=False):
        model = copy.deepcopy(base).to(device, memory_format=torch.channels_last if channels_last
                                       else torch.contiguous_format)
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    plain_model, plain_opt = fresh()
    plain_epoch(plain_model, plain_opt, loader, device, setting)  # warm-up: workers, allocator, cuDNN plans
    states, first_epoch = {}, {}
    for v in variants:
        model, opt = fresh(v["channels_last"])
        step_model = compiled(model, v["compile"])
        first_epoch[v["name"]] = project_epoch(step_model, opt, on_device, config[v["precision"]], 0, device,
                                               v["channels_last"])
        states[v["name"]] = (step_model, opt)
    times = {"plain": []} | {v["name"]: [] for v in variants}
    for r in range(repeats):
        times["plain"].append(plain_epoch(plain_model, plain_opt, loader, device, setting))
        for v in variants:
            step_model, opt = states[v["name"]]
            times[v["name"]].append(project_epoch(step_model, opt, on_device, config[v["precision"]], r + 1,
                                                  device, v["channels_last"]))
    n = len(data.y_train)
    plain_ips = [n / t for t in times["plain"]]
    rows = [{"arch": arch, "loop": "plain (DataLoader + torchvision + torchattacks)", "precision": "fp32",
             "channels_last": False, "compile": False, "images_per_s": statistics.median(plain_ips),
             "ratio_vs_plain": 1.0, "images_per_s_per_round": plain_ips}]
    for v in variants:
        ips = [n / t for t in times[v["name"]]]
        ratio = statistics.median(a / b for a, b in zip(ips, plain_ips))  # per round: like with like
        row = {"arch": arch, "loop": "arreg train_epoch", "precision": v["precision"],
               "channels_last": v["channels_last"], "compile": v["compile"], "images_per_s": statistics.median(ips),
               "ratio_vs_plain": ratio, "images_per_s_per_round": ips}
        if v["compile"]:
            steady = statistics.median(times[v["name"]])
            uncompiled = next(u["name"] for u in variants if not u["compile"] and u["precision"] == v["precision"]
                              and u["channels_last"] == v["channels_last"])
            saved = statistics.median(times[uncompiled]) - steady
            row["compile_seconds"] = first_epoch[v["name"]] - steady
            row["payback_epochs"] = row["compile_seconds"] / saved if saved > 0 else float("inf")
        rows.append(row)
    return rows


COMPILE_VARIANTS = {"c0": False, "c1": "default", "c2": "reduce-overhead"}


def parse_variant(name: str) -> dict:
    """'bf16-cl1-c0' -> bf16 autocast, channels_last, no torch.compile (c1: torch.compile's default
    mode, c2: mode reduce-overhead, CUDA graphs)."""
    try:
        precision, cl, c = name.split("-")
        assert precision in ("fp32", "bf16") and cl in ("cl0", "cl1") and c in COMPILE_VARIANTS
    except (ValueError, AssertionError):
        raise SystemExit(f"variant {name!r}: expected PRECISION-clN-cN (N of cl: 0 or 1, of c: 0, 1 or 2), "
                         "e.g. bf16-cl1-c0") from None
    return {"precision": precision, "channels_last": cl == "cl1", "compile": COMPILE_VARIANTS[c], "name": name}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=None, help="default: resnet20 resnet56 (the profile's with --profile)")
    parser.add_argument("--profile", default=None, help="time a profile's own runs: its network, batch, images, "
                        "augmentation and attack at eps 8 (default: the paper's attack on --archs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=None, help="training images per epoch (default: 1024 "
                        "on the CPU, 10240 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 (the profile's with --profile)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", nargs="+", default=None, metavar="PRECISION-clN-cN",
                        help="this project's settings to time, e.g. bf16-cl1-c0 (bf16, channels_last, no "
                             "compile; c1 compile, c2 compile reduce-overhead); default: all 8 of fp32|bf16 x "
                             "cl0|cl1 x c0|c1, and c2 on a GPU")
    parser.add_argument("--plain-workers", type=int, default=None,
                        help="DataLoader workers of the plain loop (default: 0 on the CPU, 4 on a GPU)")
    parser.add_argument("--data-root", default=None, help="folder of cifar10-jpeg.tar.gz (default: $ARREG_DATA)")
    parser.add_argument("--json", default=None, help="write the table and the machine here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = prepare_device(args.device)
    gpu = device.type == "cuda"
    setting, sizes = profile_setting(args.profile) if args.profile else (PAPER_SETTING, {})
    archs = args.archs or ([sizes["arch"]] if sizes else ["resnet20", "resnet56"])
    batch_size = args.batch_size or sizes.get("batch_size", 128)
    images = args.images or sizes.get("images") or (10240 if gpu else 1024)
    workers = args.plain_workers if args.plain_workers is not None else (4 if gpu else 0)
    compiles = (0, 1, 2) if gpu else (0, 1)
    names = args.variants or [f"{p}-cl{cl}-c{c}" for p, cl, c in itertools.product(("fp32", "bf16"), (0, 1), compiles)]
    names += [n[:-1] + "0" for n in names if not n.endswith("c0") and n[:-1] + "0" not in names]  # payback needs it
    names = list(dict.fromkeys(names))
    variants = [parse_variant(n) for n in names]
    data, dataset = training_data(images, args.data_root)
    rows = []
    for arch in archs:
        rows += run(arch, device, data, dataset, batch_size, args.repeats, variants, workers, setting)
        print(f"[pgd_at_throughput] {arch} done", flush=True)
    table = pd.DataFrame(rows)
    meta = {**machine_info(), "device": str(device), "dataset": dataset, "images": len(data.y_train),
            "batch_size": batch_size, "repeats": args.repeats, "plain_workers": workers, "profile": args.profile,
            "width": setting["width"], "augment": setting["augment"],
            "attack": f"l-inf PGD eps {setting['eps']:g}/255, {setting['steps']} steps of {setting['alpha']:g}/255, "
                      "random start"}
    print(json.dumps(meta))
    print(table.drop(columns="images_per_s_per_round").to_string(index=False, float_format="{:.2f}".format))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "results": table.replace({np.inf: None}).to_dict("records")},
                                              indent=2) + "\n")
    return table


if __name__ == "__main__":
    main()
