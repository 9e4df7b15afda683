"""Spectral-norm clipping of every weight layer at the end of each epoch (appendix B.4.2,
Fig. 6, Table 6), following Sedghi, Gupta & Long (ICLR 2019, Sec. 3.2).

A conv layer's operator is block-diagonal in the Fourier basis (see `spectrum`). Clipping each
block's singular values at c gives the nearest (Frobenius) operator of norm <= c, but its
kernel fills the whole n x n torus; truncating it back to the k x k support raises the norm
again (a 7.1-norm random 3x3 layer clipped to 1 ends near 1.37). As Sedghi et al. we repeat
clip-and-truncate (alternating projections) until the exact norm is <= c (1 + tol).

Stride 2: we clip the exact stride-2 operator, i.e. the (n/2)^2 aliased c_out x 4 c_in blocks
(`spectrum.conv_blocks`), not the stride-1 operator. The kernel-on-the-torus -> blocks map is
a scaled isometry, so this is the same Frobenius projection as at stride 1, just onto the set
of kernels whose *stride-2* operator has norm <= c; clipping the stride-1 operator instead
would also bound the stride-2 norm (subsampling is a contraction) but shrinks the layer more
than needed. The stopping test uses the same exact stride-2 norm.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from .spectrum import (_check_stride, _conv_geometry, _hw, _support, conv_blocks, conv_from_blocks,
                       conv_spectral_norm, linear_singular_values, transfer_matrices)

__all__ = ["clip_conv_spectral_norm", "clip_linear_spectral_norm", "clip_model_spectral_norm", "spectral_clip_hook"]


def _clip_blocks(blocks: torch.Tensor, c: float, svd=None) -> torch.Tensor:
    """U min(S, c) V^H for a batch of matrices (reusing `svd` = (U, S, V^H) if given)."""
    u, s, vh = svd if svd is not None else torch.linalg.svd(blocks, full_matrices=False)
    return u @ (s.clamp(max=c).to(u.dtype)[..., None] * vh)


@torch.no_grad()
def clip_conv_spectral_norm(weight: torch.Tensor, input_hw, c: float, stride: int = 1, tol: float = 0.05,
                            max_repeats: int = 50) -> tuple[torch.Tensor, int]:
    """Clip the circular conv operator's norm (at `stride`, on h x w inputs) to <= c (1 + tol) by
    repeated clip-and-truncate (Sedghi et al., 2019). Returns (new weight, repetitions); the
    weight is returned unchanged with 0 repetitions if it is already within bound."""
    hw = _hw(input_hw)
    _check_stride(stride, hw)
    if weight.shape[2] > hw[0] or weight.shape[3] > hw[1]:
        raise ValueError(f"kernel {tuple(weight.shape[2:])} larger than the input {hw}: cannot truncate")
    rows, cols = _support(weight, hw)
    w = weight.detach()
    for repeats in range(max_repeats + 1):
        blocks = conv_blocks(transfer_matrices(w, hw), stride)
        svd = torch.linalg.svd(blocks, full_matrices=False)
        norm = svd[1].max().item()
        if norm <= c * (1 + tol):
            return (weight if repeats == 0 else w), repeats
        if repeats == max_repeats:
            break
        torus = torch.fft.ifft2(conv_from_blocks(_clip_blocks(blocks, c, svd), stride), dim=(0, 1)).real
        w = torus[rows[:, None], cols[None, :]].permute(2, 3, 0, 1).contiguous().to(weight.dtype)
    raise RuntimeError(f"spectral clipping to c={c} did not reach tolerance {tol} after {max_repeats} repeats "
                       f"(norm still {norm:.4f} > {c * (1 + tol):.4f})")


@torch.no_grad()
def clip_linear_spectral_norm(weight: torch.Tensor, c: float) -> torch.Tensor:
    """Exact projection: singular values clipped at c."""
    return _clip_blocks(weight.detach(), c)


@torch.no_grad()
def clip_model_spectral_norm(model: nn.Module, c: float, input_size: int, tol: float = 0.05) -> list[dict]:
    """Clip every conv/linear layer's spectral norm to c in place (convs at their true input
    size and stride, circular-padding operator; layers already <= c (1 + tol) are left as they
    are, linear layers are clipped exactly to c). Returns per layer
    {"name", "norm_before", "norm_after", "repeats"}."""
    from .models import weight_layers

    out = []
    for name, module, hw in weight_layers(model, input_size):
        w = module.weight
        if isinstance(module, nn.Conv2d):
            stride = _conv_geometry(module)
            norm = lambda v: conv_spectral_norm(v, hw, stride).item()
            clip = lambda v: clip_conv_spectral_norm(v, hw, c, stride, tol)
        else:
            norm = lambda v: linear_singular_values(v)[0].item()
            clip = lambda v: (clip_linear_spectral_norm(v, c), 1)
        before = after = norm(w)
        repeats = 0
        if before > c * (1 + tol):
            new, repeats = clip(w)
            w.copy_(new)
            after = norm(w)
        out.append({"name": name, "norm_before": before, "norm_after": after, "repeats": repeats})
    return out


def spectral_clip_hook(c: float, input_size: int, tol: float = 0.05):
    """End-of-epoch hook for `train.fit`: (model, epoch) -> dict merged into the history row,
    {"spectral_clip": per-layer list of `clip_model_spectral_norm`, "spectral_clip_seconds",
    "log_spectral_complexity": sum of log norms after clipping (Definition 7)}."""

    def hook(model: nn.Module, epoch: int) -> dict:
        start = time.perf_counter()
        layers = clip_model_spectral_norm(model, c, input_size, tol)
        log_sc = math.fsum(math.log(r["norm_after"]) if r["norm_after"] > 0 else -math.inf for r in layers)
        return {"spectral_clip": layers, "spectral_clip_seconds": time.perf_counter() - start,
                "log_spectral_complexity": log_sc}

    return hook
