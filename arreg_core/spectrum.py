"""Singular values of the networks' weight layers (section 4.2.2, Fig. 5c/d, appendix B.2;
spectral complexity, Definition 7, appendix B.4).

A conv layer is the linear operator it applies to its actual input size. For circular padding
and stride 1 that operator is block-diagonalised by the 2-D DFT (Sedghi, Gupta & Long, "The
singular values of convolutional layers", ICLR 2019): its singular values are the union over
the n x n frequencies of the singular values of the c_out x c_in transfer matrices. Stride 2
subsamples the stride-1 output, which aliases 4 input frequencies onto each output frequency:
the operator splits into (n/2)^2 blocks of size c_out x 4 c_in. The real layers use zero
padding; `circular_vs_zero_padding_gap` measures what the circular model misses.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "conv_operator_matrix",
    "transfer_matrices",
    "conv_blocks",
    "conv_from_blocks",
    "conv_singular_values",
    "conv_spectral_norm",
    "reshaped_kernel_singular_values",
    "linear_singular_values",
    "layer_singular_values",
    "singular_value_table",
    "log_spectral_complexity",
    "spectral_complexity",
    "circular_vs_zero_padding_gap",
    "std_difference_summary",
]


def _hw(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _check_kernel(weight: torch.Tensor) -> tuple[int, int]:
    if weight.dim() != 4:
        raise ValueError(f"conv weight must be (c_out, c_in, kh, kw), got shape {tuple(weight.shape)}")
    kh, kw = weight.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"only odd kernels (padding k // 2 keeps the size) are supported, got {kh}x{kw}")
    return kh // 2, kw // 2


def _check_stride(stride: int, hw: tuple[int, int]) -> None:
    if stride not in (1, 2):
        raise ValueError(f"only strides 1 and 2 are supported, got {stride}")
    if stride == 2 and (hw[0] % 2 or hw[1] % 2):
        raise ValueError(f"stride 2 needs an even input size, got {hw}")


@torch.no_grad()
def conv_operator_matrix(weight: torch.Tensor, input_hw, stride: int = 1, padding_mode: str = "circular") -> torch.Tensor:
    """Dense matrix (c_out*h_out*w_out, c_in*h*w) of conv2d(padding k//2) on h x w inputs,
    built column by column from basis inputs. A test/benchmark reference: small shapes only."""
    (ph, pw), (h, w) = _check_kernel(weight), _hw(input_hw)
    c_in = weight.shape[1]
    basis = torch.eye(c_in * h * w, dtype=weight.dtype, device=weight.device).view(-1, c_in, h, w)
    if padding_mode == "circular":
        out = F.conv2d(F.pad(basis, (pw, pw, ph, ph), mode="circular"), weight, stride=stride)
    elif padding_mode == "zeros":
        out = F.conv2d(basis, weight, stride=stride, padding=(ph, pw))
    else:
        raise ValueError(f"padding_mode must be 'circular' or 'zeros', got {padding_mode!r}")
    return out.reshape(basis.shape[0], -1).T


def _support(weight: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Torus positions of the kernel taps: tap (a, b) sits at offset (a - kh//2, b - kw//2)."""
    (ph, pw), dev = _check_kernel(weight), weight.device
    rows = (torch.arange(weight.shape[2], device=dev) - ph) % hw[0]
    cols = (torch.arange(weight.shape[3], device=dev) - pw) % hw[1]
    return rows, cols


def transfer_matrices(weight: torch.Tensor, input_hw) -> torch.Tensor:
    """Per-frequency transfer matrices (h, w, c_out, c_in) of the circular stride-1 conv
    (Sedghi et al., 2019, Thm. 6): 2-D FFT of the kernel placed on the h x w torus.

    conv2d is a cross-correlation, y(i) = sum_u K(u) x(i + u), so the true transfer matrix is
    the complex conjugate of this FFT; conjugation leaves singular values unchanged and
    `spectral_clip` inverts with the same convention."""
    hw = _hw(input_hw)
    rows, cols = _support(weight, hw)
    torus = weight.new_zeros(hw[0], hw[1], *weight.shape[:2])
    # accumulate: taps wrap onto the same position when the kernel is larger than the input
    torus.index_put_((rows[:, None], cols[None, :]), weight.permute(2, 3, 0, 1), accumulate=True)
    return torch.fft.fft2(torus, dim=(0, 1))


def conv_blocks(transfer: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """The operator's diagonal blocks in the unitary Fourier basis. Stride 1: the transfer
    matrices. Stride 2: output frequency g gathers input frequencies g + (a h/2, b w/2),
    a, b in {0, 1}: blocks (h/2, w/2, c_out, 4 c_in) = [T(g), T(g + (0, w/2)), ...] / 2."""
    if stride == 1:
        return transfer
    h, w, co, ci = transfer.shape
    t = transfer.reshape(2, h // 2, 2, w // 2, co, ci).permute(1, 3, 4, 0, 2, 5)
    return t.reshape(h // 2, w // 2, co, 4 * ci) / 2


def conv_from_blocks(blocks: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Inverse of `conv_blocks`: transfer matrices (h, w, c_out, c_in) from the blocks."""
    if stride == 1:
        return blocks
    h2, w2, co, ci4 = blocks.shape
    t = (2 * blocks).reshape(h2, w2, co, 2, 2, ci4 // 4).permute(3, 0, 4, 1, 2, 5)
    return t.reshape(2 * h2, 2 * w2, co, ci4 // 4)


def conv_singular_values(weight: torch.Tensor, input_hw, stride: int = 1) -> torch.Tensor:
    """All singular values, sorted descending, of conv2d(weight, padding k//2, circular) on
    h x w inputs at stride 1 or 2; exact (Fourier method, Sedghi et al., 2019)."""
    hw = _hw(input_hw)
    _check_stride(stride, hw)
    blocks = conv_blocks(transfer_matrices(weight.detach(), hw), stride)
    return torch.linalg.svdvals(blocks).flatten().sort(descending=True).values


def conv_spectral_norm(weight: torch.Tensor, input_hw, stride: int = 1) -> torch.Tensor:
    """Operator 2-norm of the circular conv layer: its largest singular value."""
    return conv_singular_values(weight, input_hw, stride)[0]


def reshaped_kernel_singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values of the kernel reshaped to c_out x (c_in k k): the common cheap proxy
    (e.g. Miyato et al., 2018), not the operator's; sorted descending."""
    return torch.linalg.svdvals(weight.detach().reshape(weight.shape[0], -1))


def linear_singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values of a linear layer's weight matrix, sorted descending."""
    return torch.linalg.svdvals(weight.detach())


def _conv_geometry(module: nn.Conv2d) -> int:
    """The module's stride, after checking it is an operator `conv_singular_values` covers."""
    kh, kw = module.kernel_size
    if module.padding != (kh // 2, kw // 2) or module.dilation != (1, 1) or module.groups != 1:
        raise ValueError(f"unsupported conv {module}: need padding k//2, no dilation, groups=1")
    if module.stride[0] != module.stride[1]:
        raise ValueError(f"unequal strides not supported: {module}")
    return module.stride[0]


def _stats(sv: torch.Tensor) -> dict:
    """Population std (numpy's default), min, max, count of a layer's singular values."""
    return {"std": sv.std(correction=0).item(), "min": sv.min().item(), "max": sv.max().item(), "n": sv.numel()}


@torch.no_grad()
def layer_singular_values(model: nn.Module, input_size: int) -> list[dict]:
    """For every conv/linear layer in forward order: its operator's singular values at the
    layer's true input size (circular-padding model for convs) and their std/min/max/n."""
    from .models import weight_layers

    out = []
    for index, (name, module, hw) in enumerate(weight_layers(model, input_size)):
        if isinstance(module, nn.Conv2d):
            stride = _conv_geometry(module)
            sv, kind = conv_singular_values(module.weight, hw, stride), "conv"
        else:
            stride, sv, kind = None, linear_singular_values(module.weight), "linear"
        sv = sv.float().cpu()
        out.append({"index": index, "name": name, "kind": kind, "input_hw": hw, "stride": stride,
                    "singular_values": sv, **_stats(sv)})
    return out


def singular_value_table(model: nn.Module, input_size: int) -> pd.DataFrame:
    """`layer_singular_values` as a table, without the value arrays."""
    cols = ["index", "name", "kind", "input_hw", "stride", "n", "std", "min", "max"]
    return pd.DataFrame([{c: r[c] for c in cols} for r in layer_singular_values(model, input_size)], columns=cols)


def log_spectral_complexity(model: nn.Module, input_size: int) -> float:
    """log SC(T) = sum over weight layers of log ||W_i||_2 (Definition 7); -inf if a layer is 0."""
    return math.fsum(math.log(r["max"]) if r["max"] > 0 else -math.inf
                     for r in layer_singular_values(model, input_size))


def spectral_complexity(model: nn.Module, input_size: int) -> float:
    """SC(T) = prod_i ||W_i||_2 (Definition 7), as exp(sum log) (inf on overflow)."""
    log_sc = log_spectral_complexity(model, input_size)
    return math.exp(log_sc) if log_sc < math.log(torch.finfo(torch.float64).max) else math.inf


@torch.no_grad()
def circular_vs_zero_padding_gap(weight: torch.Tensor, input_hw, stride: int = 1) -> dict:
    """How far the circular-padding (Fourier) spectrum is from the real zero-padded layer's,
    whose singular values come from a dense SVD (small shapes only). Relative differences
    are (circular - zeros) / zeros."""
    w = weight.detach().double()
    circ = conv_singular_values(w, input_hw, stride)
    zero = torch.linalg.svdvals(conv_operator_matrix(w, input_hw, stride, "zeros"))
    top_c, top_z = circ[0].item(), zero[0].item()
    std_c, std_z = circ.std(correction=0).item(), zero.std(correction=0).item()
    return {
        "n": circ.numel(),
        "top_circular": top_c, "top_zeros": top_z, "top_rel_diff": (top_c - top_z) / top_z,
        "std_circular": std_c, "std_zeros": std_z, "std_rel_diff": (std_c - std_z) / std_z,
        "max_abs_diff": (circ - zero).abs().max().item(),
    }


def std_difference_summary(std_a, std_b) -> dict:
    """Appendix B.2: per-layer singular-value stds of two networks (a: AR strength 4, b: 16),
    split into the layers whose std "decreased" (std_a > std_b) and "increased" (std_a < std_b).
    Per group: count, sum and mean of the (positive) differences, std_a - std_b for "decreased"
    and std_b - std_a for "increased". The paper's CIFAR-10 sums / means, 4.7465 / 0.1158 and
    0.4372 / 0.0312, imply 41 + 14 = 55 layers: ResNet-56's convs without its linear layer (our
    reading). Equal layers count as "unchanged"; the mean of an empty group is NaN."""
    a = torch.as_tensor(std_a, dtype=torch.float64).flatten()
    b = torch.as_tensor(std_b, dtype=torch.float64).flatten()
    if a.shape != b.shape:
        raise ValueError(f"need one std per layer for both networks, got {a.numel()} and {b.numel()}")

    def group(diff):
        diff = diff[diff > 0]
        n = diff.numel()
        return {"count": n, "sum": math.fsum(diff.tolist()), "mean": math.fsum(diff.tolist()) / n if n else math.nan}

    return {"decreased": group(a - b), "increased": group(b - a), "unchanged": int((a == b).sum())}
