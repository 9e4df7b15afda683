"""Where and how tensors are computed: the device, its bf16 precision, and seeded generators.

Shared by training, evaluation and the analysis instruments, so that evaluating a stored
network does not import the training code.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def prepare_device(device: str | torch.device = "auto") -> torch.device:
    """The device to compute on ('auto': CUDA when present, else the CPU). Also flushes
    denormal floats to zero on the CPU: Fixup's zero-initialised layers produce them early in
    training, and CPU arithmetic on them is much slower (README, "Measured here")."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_flush_denormal(True)
    return torch.device(device)


def resolve_device(device="auto") -> torch.device:
    """prepare_device, after checking that the device exists here: one line naming the fix, not a
    failure in the middle of training."""
    try:
        dev = torch.device("cuda" if str(device) == "auto" and torch.cuda.is_available() else
                           "cpu" if str(device) == "auto" else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: choose auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA GPU is visible here: use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) here: "
                             f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here: use --device cpu (or auto)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: choose auto, cpu, cuda or cuda:N")
    return prepare_device(dev)


def native_bf16(device: str | torch.device = "auto") -> bool:
    """Whether `device` computes in bf16 natively: a CUDA GPU with bf16 units (Ampere or newer),
    or a CPU with AMX tiles or AVX512-BF16. Elsewhere bf16 autocast is emulated and slower than fp32."""
    device = prepare_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()  # oneDNN told to use less of the CPU
        if capped not in ("ALL", "DEFAULT") and "AMX" not in capped and "BF16" not in capped:
            return False
        return any(getattr(torch.cpu, probe, lambda: False)()
                   for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return False


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """`precision` with "auto" replaced by "bf16" where `device` computes bf16 natively, else "fp32".
    The result goes into the TrainConfig (and so into the run key): a config never says "auto"."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(precision: str, device: torch.device, cache: bool = True):
    """The autocast context of a training precision: bf16 for the forward passes under "bf16"
    (losses, gradients w.r.t. inputs, optimizer state and master weights stay fp32); off under fp32.
    `cache=False` re-casts the weights at each use, as a CUDA graph capture needs (same values)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache)


def epoch_generator(seed: int, epoch: int, device: torch.device, stream: int = 0) -> torch.Generator:
    """A generator on `device` seeded by (seed, epoch, stream): an epoch's randomness does not
    depend on what ran before it, which makes resumed runs exact."""
    g = torch.Generator(device=device)
    g.manual_seed(((seed * 1_000_003 + epoch) * 7919 + stream) % (2**63))
    return g


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is empty on most Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """What computes on `device`: the GPU's name, else the CPU's model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "Apple MPS" if device.type == "mps" else cpu_model()
