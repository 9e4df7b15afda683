"""Spectral clipping (appendix B.4.2), checked on the dense circular operator."""

import json

import pytest
import torch

from arreg_core.spectral_clip import (clip_conv_spectral_norm, clip_linear_spectral_norm, clip_model_spectral_norm,
                                      spectral_clip_hook)
from arreg_core.spectrum import conv_operator_matrix, conv_spectral_norm, linear_singular_values
from benchmarks.spectral_clip import every_block_svd_clip


def dense_norm(w, hw, stride):
    return torch.linalg.matrix_norm(conv_operator_matrix(w.double(), hw, stride), ord=2).item()


@pytest.mark.parametrize("c_out,c_in,hw,stride", [(8, 8, 8, 1), (6, 4, 6, 1), (8, 4, 8, 2), (4, 8, (4, 6), 2)])
@pytest.mark.parametrize("c", [0.5, 1.0])
def test_clip_conv_reaches_bound_on_dense_operator(c_out, c_in, hw, stride, c):
    w = torch.randn(c_out, c_in, 3, 3, generator=torch.Generator().manual_seed(1))
    assert dense_norm(w, hw, stride) > 2 * c
    new, repeats = clip_conv_spectral_norm(w, hw, c, stride=stride, tol=0.05)
    assert repeats >= 1 and new.shape == w.shape and new.dtype == w.dtype
    assert dense_norm(new, hw, stride) <= c * 1.05 + 1e-6


@pytest.mark.parametrize("c_out,c_in,hw,stride", [(8, 8, (8, 8), 1), (6, 4, (5, 7), 1), (4, 8, (8, 8), 2), (8, 4, (6, 10), 2)])
def test_one_block_of_each_conjugate_pair_clips_like_every_block(c_out, c_in, hw, stride):
    """Decomposing one block of each conjugate pair through its Gram matrix gives the kernel the
    SVD of every block gives, with the same repetitions (odd grids included)."""
    w = torch.randn(c_out, c_in, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    expected, expected_repeats = every_block_svd_clip(w, hw, 1.0, stride)
    new, repeats = clip_conv_spectral_norm(w, hw, 1.0, stride=stride)
    assert repeats == expected_repeats >= 2
    assert torch.allclose(new, expected, atol=1e-10)


def test_clip_below_bound_is_identity():
    w = torch.randn(4, 4, 3, 3)
    w = w / conv_spectral_norm(w, 8) * 0.9
    for stride in (1, 2):
        new, repeats = clip_conv_spectral_norm(w, 8, 1.0, stride=stride)
        assert repeats == 0 and torch.equal(new, w)


def test_clip_reports_failure():
    with pytest.raises(RuntimeError, match="did not reach tolerance"):
        clip_conv_spectral_norm(torch.randn(8, 8, 3, 3), 8, 1.0, tol=0.0, max_repeats=2)


def test_clip_linear_exact():
    m = torch.randn(10, 20, dtype=torch.float64)
    s = linear_singular_values(m)
    c = s[4].item()
    clipped = linear_singular_values(clip_linear_spectral_norm(m, c))
    assert torch.allclose(clipped, s.clamp(max=c))


def _random_small_resnet():
    from arreg_core.models import build_model

    model = build_model("resnet8", 10)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.3)
    return model


def test_clip_model_in_place_and_hook():
    model, c = _random_small_resnet(), 1.0
    rows = clip_model_spectral_norm(model, c, input_size=16)
    assert len(rows) == 8 and all(r["norm_before"] > c for r in rows)
    assert all(r["norm_after"] <= c * 1.05 and r["repeats"] >= 1 for r in rows)
    assert conv_spectral_norm(model.blocks[1].conv1.weight, 16, 2).item() == pytest.approx(rows[3]["norm_after"])
    assert linear_singular_values(model.fc.weight)[0].item() == pytest.approx(c, rel=1e-5)
    out = spectral_clip_hook(c, 16)(model, epoch=0)
    json.dumps(out)
    assert all(r["repeats"] == 0 for r in out["spectral_clip"]) and out["log_spectral_complexity"] <= 0.05 * 8
