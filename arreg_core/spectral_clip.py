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

A real kernel's blocks come in conjugate pairs: block -g (mod the grid of blocks) is the complex
conjugate of block g, its columns permuted at stride 2. Both have the same singular values, and
clipping commutes with conjugation and with permuting columns, so only one block of each pair is
decomposed, and the kernel is the real part of the inverse FFT of the kept half counted twice
(T(-f) = conj(T(f)) supplies the other half). Each block is decomposed through its smaller Gram
matrix (a Hermitian eigendecomposition, 2-7x cheaper than an SVD); its rounding, relative to the
largest squared singular value, is far below the 5% tolerance of the stopping test.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from .spectrum import (_check_stride, _conv_geometry, _hw, _support, conv_blocks, conv_from_blocks,
                       linear_singular_values, transfer_matrices)

__all__ = ["clip_conv_spectral_norm", "clip_linear_spectral_norm", "clip_model_spectral_norm", "spectral_clip_hook"]


def _gram_eigh(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (the squared singular values) and eigenvectors of the smaller Gram matrix of
    each block, B B^H or B^H B: a Hermitian eigendecomposition is 2-7x cheaper than the SVD here."""
    wide = blocks.shape[-2] <= blocks.shape[-1]
    return torch.linalg.eigh(blocks @ blocks.mH if wide else blocks.mH @ blocks)


def _clip_by_gram(blocks: torch.Tensor, c: float, squares: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """U min(S, c) V^H = B - U diag((1 - c/s)+) U^H B (or B - B V diag((1 - c/s)+) V^H), from
    `_gram_eigh`; only singular values above c enter, so the squares' rounding near 0 does not."""
    shrink = (1 - c / squares.clamp(min=0).sqrt()).clamp(min=0).to(vectors.dtype)
    projector = vectors @ (shrink[..., None] * vectors.mH)
    wide = blocks.shape[-2] <= blocks.shape[-1]
    return blocks - (projector @ blocks if wide else blocks @ projector)


def _one_of_each_pair(grid: tuple[int, int], device=None) -> torch.Tensor:
    """Mask over the (H, W) grid of blocks keeping one block g of each conjugate pair {g, -g}
    (the one first in row-major order; self-conjugate blocks are kept)."""
    i = torch.arange(grid[0], device=device)[:, None]
    j = torch.arange(grid[1], device=device)[None, :]
    return i * grid[1] + j <= (-i) % grid[0] * grid[1] + (-j) % grid[1]


def _real_inverse_weights(kept: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Weights (h, w, 1, 1) such that Re(ifft2(weights * T)) is the real kernel whose transfer
    matrices are T at the frequencies of the `kept` blocks (mask over the grid of blocks, which
    tiles the h x w frequencies) and conj(T(-f)) at the others: 2 on a block kept for its pair,
    1 on a self-conjugate block (it holds both f and -f), 0 on the blocks left out."""
    grid = kept.shape
    i = torch.arange(grid[0], device=kept.device)[:, None]
    j = torch.arange(grid[1], device=kept.device)[None, :]
    self_conjugate = (i == (-i) % grid[0]) & (j == (-j) % grid[1])
    per_block = kept.float() * torch.where(self_conjugate, 1.0, 2.0)
    rows = torch.arange(hw[0], device=kept.device)[:, None] % grid[0]
    cols = torch.arange(hw[1], device=kept.device)[None, :] % grid[1]
    return per_block[rows, cols][..., None, None]


def _clip_conv(weight: torch.Tensor, input_hw, c: float, stride: int = 1, tol: float = 0.05,
               max_repeats: int = 50) -> tuple[torch.Tensor, int, float, float]:
    """`clip_conv_spectral_norm` returning (new weight, repetitions, norm before, norm after)."""
    hw = _hw(input_hw)
    _check_stride(stride, hw)
    if weight.shape[2] > hw[0] or weight.shape[3] > hw[1]:
        raise ValueError(f"kernel {tuple(weight.shape[2:])} larger than the input {hw}: cannot truncate")
    rows, cols = _support(weight, hw)
    kept = _one_of_each_pair((hw[0] // stride, hw[1] // stride), weight.device)
    inverse_weights = _real_inverse_weights(kept, hw)
    w, before = weight.detach(), None
    for repeats in range(max_repeats + 1):
        blocks = conv_blocks(transfer_matrices(w, hw), stride)
        half = blocks[kept]
        squares, vectors = _gram_eigh(half)
        norm = squares.max().clamp(min=0).sqrt().item()
        before = norm if before is None else before
        if norm <= c * (1 + tol):
            return (weight if repeats == 0 else w), repeats, before, norm
        if repeats == max_repeats:
            break
        clipped = torch.zeros_like(blocks)
        clipped[kept] = _clip_by_gram(half, c, squares, vectors)
        torus = torch.fft.ifft2(inverse_weights * conv_from_blocks(clipped, stride), dim=(0, 1)).real
        w = torus[rows[:, None], cols[None, :]].permute(2, 3, 0, 1).contiguous().to(weight.dtype)
    raise RuntimeError(f"spectral clipping to c={c} did not reach tolerance {tol} after {max_repeats} repeats "
                       f"(norm still {norm:.4f} > {c * (1 + tol):.4f})")


@torch.no_grad()
def clip_conv_spectral_norm(weight: torch.Tensor, input_hw, c: float, stride: int = 1, tol: float = 0.05,
                            max_repeats: int = 50) -> tuple[torch.Tensor, int]:
    """Clip the circular conv operator's norm (at `stride`, on h x w inputs) to <= c (1 + tol) by
    repeated clip-and-truncate (Sedghi et al., 2019). Returns (new weight, repetitions); the
    weight is returned unchanged with 0 repetitions if it is already within bound."""
    new, repeats, _, _ = _clip_conv(weight, input_hw, c, stride, tol, max_repeats)
    return new, repeats


@torch.no_grad()
def clip_linear_spectral_norm(weight: torch.Tensor, c: float) -> torch.Tensor:
    """Exact projection: singular values clipped at c, U min(S, c) V^H."""
    u, s, vh = torch.linalg.svd(weight.detach(), full_matrices=False)
    return u @ (s.clamp(max=c)[..., None] * vh)


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
            new, repeats, before, after = _clip_conv(w, hw, c, _conv_geometry(module), tol)
        else:
            before = linear_singular_values(w)[0].item()
            new, repeats = (clip_linear_spectral_norm(w, c), 1) if before > c * (1 + tol) else (w, 0)
            after = linear_singular_values(new)[0].item() if repeats else before
        if repeats:
            w.copy_(new)
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
