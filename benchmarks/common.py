"""Shared by the benchmarks: what machine a benchmark ran on (recorded next to every number: CPU
model, ISA, threads, GPU), and a network with a non-zero classifier."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from arreg_core.executors import cpu_model  # noqa: F401  (re-exported for the benchmarks)


def cpu_flags() -> list[str]:
    """The bf16-relevant ISA flags of this CPU (AMX tiles, AVX512-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f"))


def machine_info() -> dict:
    info = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_model": cpu_model(), "cpu_isa": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16_flags": cpu_flags(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def nonzero_classifier(model: torch.nn.Module, std: float = 0.01) -> torch.nn.Module:
    """Re-draw the last linear layer: Fixup's zero classifier gives PGD no gradient at the first
    step, which would make the first batches of a timing unrepresentative."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(last.weight, 0, std)
    return model
