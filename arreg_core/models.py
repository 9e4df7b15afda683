"""Networks of the paper (appendix D.2, D.3).

CIFAR: ResNet-(6n+2) of He et al. (2016) *without* batch norm, Fixup initialisation
(Zhang et al., 2019) with Fixup's scalar multipliers and biases omitted (appendix D.3: they
change the layers' spectral norms), no dropout, parameter-free shortcuts (option A: stride-2
subsampling and zero-padded channels) so that ResNet-56 has 55 convolutions + 1 linear layer
= the 56 weight layers of Fig. 1a.

Tiny-ImageNet: WRN-50-2 (bottleneck, [3, 4, 6, 3] units, widths 64k..512k, k = 2) with a 3x3
stride-1 stem, no max pool, batch norm kept, Xavier-uniform convolutions (appendix D.2).

Every model takes images in [0, 1] and normalises them itself, so attacks work in pixel space.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

CIFAR_ARCHS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
ARCHS = CIFAR_ARCHS + ("wrn50_2",)

# Per-channel statistics the models normalise with (the data sets' training sets).
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar10-jpeg": ((0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}


class Normalize(nn.Module):
    """(x - mean) / std with fixed buffers: the model's input stays in [0, 1] pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Residual block x + conv(relu(conv(x))), then ReLU; no batch norm, no Fixup scalars."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.conv2 = conv3x3(c_out, c_out)
        self.stride, self.pad = stride, c_out - c_in

    def shortcut(self, x):
        """Option-A shortcut: subsample and zero-pad channels (no weights)."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x):
        return F.relu(self.shortcut(x) + self.conv2(F.relu(self.conv1(x))))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: a stem conv, 3 stages of n blocks, global pool, linear."""

    def __init__(self, depth: int, num_classes: int = 10, width: int = 1, normalization=None):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 >= 8, got {depth}")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.normalize = Normalize(*(normalization or NORMALIZATION["cifar10"]))
        self.conv1 = conv3x3(3, widths[0])
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)
        fixup_init(self)

    def forward(self, x):
        x = F.relu(self.conv1(self.normalize(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@torch.no_grad()
def fixup_init(model: CifarResNet) -> None:
    """Fixup (Zhang et al., 2019, Sec. 3): He-normal stem; in each of the L residual branches
    of m = 2 layers the first conv is He-normal scaled by L^(-1/(2m-2)) = L^(-1/2) and the
    last is zero; the classifier's weight and bias are zero."""
    num_branches = len(model.blocks)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    for block in model.blocks:
        w = block.conv1.weight
        fan_out = w.shape[0] * w[0, 0].numel()
        nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_out) * num_branches ** -0.5)
        nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)


def wrn50_2(num_classes: int = 200, normalization=None) -> nn.Module:
    """WRN-50-2 for 56x56 Tiny-ImageNet crops (appendix D.2), built on torchvision's."""
    net = torchvision.models.wide_resnet50_2(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return nn.Sequential(Normalize(*(normalization or NORMALIZATION["tinyimagenet"])), net)


def build_model(arch: str, num_classes: int, width: int = 1, dataset: str | None = None) -> nn.Module:
    """The network called `arch` (one of ARCHS), normalising inputs with `dataset`'s statistics."""
    normalization = NORMALIZATION.get(dataset) if dataset else None
    if arch == "wrn50_2":
        if width != 1:
            raise ValueError("wrn50_2 has a fixed width (k = 2); use width=1")
        return wrn50_2(num_classes, normalization)
    match = re.fullmatch(r"resnet(\d+)", arch)
    if arch not in ARCHS or not match:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    return CifarResNet(int(match.group(1)), num_classes, width, normalization)


class WeightLayer(NamedTuple):
    name: str
    module: nn.Module
    input_hw: tuple[int, int] | None  # spatial size of a conv's input; None for a linear layer


def weight_layers(model: nn.Module, input_size: int) -> list[WeightLayer]:
    """Every conv and linear layer in forward order, with the spatial size of its input
    (Fig. 1a and 5c/d index layers this way; the spectrum analysis needs the sizes)."""
    names = {m: n for n, m in model.named_modules()}
    found: list[WeightLayer] = []

    def record(module, inputs, _output):
        hw = tuple(inputs[0].shape[-2:]) if isinstance(module, nn.Conv2d) else None
        found.append(WeightLayer(names[module], module, hw))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        p = next(model.parameters())
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=p.device, dtype=p.dtype))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return found
