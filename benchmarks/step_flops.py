"""Floating-point operations of one training step per image, counted, for every kind of step the
`paper` profile holds (benchmarks/paper_profile_cost.py's kinds: ResNet-56/110 PGD-10 and FGSM on
CIFAR, WRN-50-2 on Tiny-ImageNet's 56x56 crops, clean and PGD-10) and the `gpu` tier's ResNet-20,
and per run of the `paper` profile (epochs x training images x the step's FLOPs).

The count is of what this project's step runs (`train.training_step`: the attack's forward and
input-gradient passes, then the training forward, backward and update), operator by operator, by
PyTorch's own FLOP formulas (`torch.utils.flop_counter.flop_registry`: convolutions and matrix
products, forward and backward; element-wise work is not counted). It does not depend on the
device or the precision, so it runs on the CPU. With a measured time per image it gives the
arithmetic rate a step reached, and with a chip's rate the least time the profile could take.

    python benchmarks/step_flops.py --json benchmarks/results/step_flops.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

from arreg_core.data import TINY_SIZE
from arreg_core.device import epoch_generator
from arreg_core.models import build_model
from arreg_core.profiles import EXPERIMENTS, load_profile
from arreg_core.train import TrainConfig, attack_noise, training_step

try:
    from common import machine_info
    from paper_profile_cost import SHAPES, kind
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info
    from benchmarks.paper_profile_cost import SHAPES, kind

GPU_TIER = TrainConfig(dataset="cifar10", arch="resnet20", method="pgd", eps=8.0, attack_steps=10, attack_step=2.0,
                       batch_size=256)


class FlopCount(TorchDispatchMode):
    """Adds up the FLOPs of every operator run inside it that torch has a formula for (a plain
    dispatch mode: torch's FlopCounterMode hooks modules, which autograd.grad of the attack refuses)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            shape = lambda t: t.shape if isinstance(t, torch.Tensor) else t  # noqa: E731
            self.flops += formula(*tree_map(shape, args), **tree_map(shape, kwargs or {}), out_val=tree_map(shape, out))
        return out


def training_input(config: TrainConfig) -> int:
    """The side of the images the step trains on: Tiny-ImageNet's 56x56 crops, else the data set's."""
    return TINY_SIZE if config.dataset == "tinyimagenet" else SHAPES[config.dataset][1]


def step_flops(config: TrainConfig, batch: int = 2) -> dict:
    """FLOPs per image of one training step of `config` (fp32, on the CPU, a batch of `batch`
    generated images), and of one forward pass of its network."""
    classes, size = SHAPES[config.dataset][2], training_input(config)
    config = dataclasses.replace(config, batch_size=batch, precision="fp32")
    torch.manual_seed(0)
    model = build_model(config.arch, classes, width=config.width, dataset=config.dataset)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, classes, (batch,))
    noise = attack_noise(config, x, epoch_generator(0, 0, torch.device("cpu"), stream=1))
    totals = (torch.zeros(()), torch.zeros((), dtype=torch.long))
    with FlopCount() as step:
        training_step(model, optimizer, x, y, noise, config=config, scale=1.0, totals=totals)
    with FlopCount() as forward, torch.no_grad():
        model(x)
    return {"training_input": size, "gflop_per_image": step.flops / batch / 1e9,
            "forward_gflop_per_image": forward.flops / batch / 1e9}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    configs = [(exp, c) for exp in args.experiments for c in load_profile("paper").configs[exp]]
    kinds = {}
    for config in [c for _, c in configs] + [GPU_TIER]:
        if kind(config) not in kinds:
            kinds[kind(config)] = {"kind": list(kind(config)), **step_flops(config)}
            print(f"[step_flops] {kind(config)}: {kinds[kind(config)]['gflop_per_image']:.2f} GFLOP per image", flush=True)
    runs = [{"experiment": exp, "dataset": c.dataset, "arch": c.arch, "method": c.method, "eps": c.eps,
             "spectral_norm": c.spectral_norm, "epochs": c.epochs, "images": SHAPES[c.dataset][0],
             "pflop": c.epochs * SHAPES[c.dataset][0] * kinds[kind(c)]["gflop_per_image"] / 1e6} for exp, c in configs]
    out = {"meta": {**machine_info(), "counted": "convolutions and matrix products (torch.utils.flop_counter's "
                    "formulas), forward and backward; element-wise work not counted"},
           "kinds": list(kinds.values()), "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
