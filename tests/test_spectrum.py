"""Fourier singular values of conv layers against the dense operator's SVD (brute force)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from arreg_core.spectrum import (circular_vs_zero_padding_gap, conv_operator_matrix, conv_singular_values,
                                 conv_spectral_norm, layer_singular_values, linear_singular_values,
                                 log_spectral_complexity, reshaped_kernel_singular_values,
                                 singular_value_table, spectral_complexity)
from helpers import randomize

CASES = [  # (c_out, c_in, k, input_hw, stride)
    (3, 3, 3, 4, 1), (4, 2, 3, 6, 1), (2, 5, 3, 8, 1), (4, 3, 1, 6, 1), (3, 2, 3, (4, 6), 1),
    (3, 3, 5, 3, 1),  # kernel larger than the input: taps wrap around
    (4, 2, 3, 4, 2), (2, 4, 3, 6, 2), (8, 3, 3, 8, 2), (9, 2, 3, 4, 2), (4, 4, 1, 8, 2), (4, 2, 3, (4, 6), 2),
]


def dense_svdvals(w, hw, stride, mode="circular"):
    return torch.linalg.svdvals(conv_operator_matrix(w, hw, stride, mode))


@pytest.mark.parametrize("c_out,c_in,k,hw,stride", CASES)
def test_conv_singular_values_match_dense_operator(c_out, c_in, k, hw, stride):
    w = torch.randn(c_out, c_in, k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fourier, dense = conv_singular_values(w, hw, stride), dense_svdvals(w, hw, stride)
    assert fourier.shape == dense.shape
    assert torch.allclose(fourier, dense, rtol=1e-4, atol=1e-4 * dense[0].item())
    assert conv_spectral_norm(w, hw, stride) == fourier.max()


def test_float32_and_descending_order():
    w = torch.randn(16, 8, 3, 3)
    sv = conv_singular_values(w, 8, 2)
    assert sv.dtype == torch.float32 and torch.all(sv[:-1] >= sv[1:])
    dense = dense_svdvals(w.double(), 8, 2).float()
    assert torch.allclose(sv, dense, rtol=1e-4, atol=1e-4 * dense[0].item())


@pytest.mark.parametrize("mode", ["circular", "zeros"])
@pytest.mark.parametrize("stride", [1, 2])
def test_operator_matrix_is_conv2d(mode, stride):
    w, x = torch.randn(3, 2, 3, 3, dtype=torch.float64), torch.randn(2, 6, 6, dtype=torch.float64)
    y = F.conv2d(F.pad(x[None], (1, 1, 1, 1), mode="circular"), w, stride=stride) if mode == "circular" \
        else F.conv2d(x[None], w, stride=stride, padding=1)
    assert torch.allclose(conv_operator_matrix(w, 6, stride, mode) @ x.flatten(), y.flatten())


def test_unsupported_geometry_raises():
    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError):
        conv_singular_values(w, 8, stride=3)
    with pytest.raises(ValueError):
        conv_singular_values(w, 7, stride=2)
    with pytest.raises(ValueError):
        conv_singular_values(torch.randn(2, 2, 2, 2), 8)


def test_reshaped_kernel_and_linear():
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    r = reshaped_kernel_singular_values(w)
    assert r.shape == (6,) and torch.allclose(r, torch.linalg.svdvals(w.reshape(6, 36)))
    # a 1x1 conv is the same channel-mixing matrix at every pixel: each value repeated h*w times
    w1 = w[:, :, :1, :1]
    assert torch.allclose(conv_singular_values(w1, 4), reshaped_kernel_singular_values(w1).repeat_interleave(16))
    m = torch.randn(10, 7, dtype=torch.float64)
    assert torch.allclose(linear_singular_values(m), torch.linalg.svdvals(m))
    assert torch.allclose(linear_singular_values(m).square().sum(), m.square().sum())


def test_padding_gap_small_layer():
    gap = circular_vs_zero_padding_gap(torch.randn(4, 3, 3, 3), 6)
    assert gap["n"] == 3 * 36 and all(math.isfinite(v) for v in gap.values())
    gap2 = circular_vs_zero_padding_gap(torch.randn(4, 3, 3, 3), 6, stride=2)
    assert all(math.isfinite(v) for v in gap2.values())
    # padding does not matter for a 1x1 kernel
    assert circular_vs_zero_padding_gap(torch.randn(4, 3, 1, 1), 4)["max_abs_diff"] < 1e-10


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_matches_cpu():
    w = torch.randn(8, 4, 3, 3)
    assert torch.allclose(conv_singular_values(w.cuda(), 8, 2).cpu(), conv_singular_values(w, 8, 2), rtol=1e-4, atol=1e-5)


# ---- model level ----

def test_small_sequential_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
    layers = layer_singular_values(model, 8)
    assert [(r["kind"], r["input_hw"], r["stride"], r["n"]) for r in layers] == \
        [("conv", (8, 8), 1, 3 * 64), ("conv", (8, 8), 2, 6 * 16), ("linear", None, None, 5)]
    assert torch.allclose(layers[1]["singular_values"], conv_singular_values(model[2].weight, 8, 2))
    prod = math.prod(r["max"] for r in layers)
    assert spectral_complexity(model, 8) == pytest.approx(prod, rel=1e-6)


def test_resnet20_layers_and_spectral_complexity():
    from arreg_core.models import build_model

    model = randomize(build_model("resnet20", 10))
    layers = layer_singular_values(model, 32)
    assert len(layers) == 20 and [r["index"] for r in layers] == list(range(20))
    assert [r["kind"] for r in layers] == ["conv"] * 19 + ["linear"]
    assert layers[0]["input_hw"] == (32, 32) and layers[-2]["input_hw"] == (8, 8)
    assert sum(r["stride"] == 2 for r in layers) == 2
    for r in layers:
        sv = r["singular_values"]
        assert sv.device.type == "cpu" and sv.numel() == r["n"] and r["max"] == sv.max().item()
    assert layers[0]["n"] == 3 * 32 * 32 and layers[-1]["n"] == 10
    table = singular_value_table(model, 32)
    assert table["std"].tolist() == [r["std"] for r in layers]
    assert list(table.columns) == ["index", "name", "kind", "input_hw", "stride", "n", "std", "min", "max"]
    assert len(table) == 20
    norms = [r["max"] for r in layers]
    assert spectral_complexity(model, 32) == pytest.approx(math.prod(norms), rel=1e-5)
    assert log_spectral_complexity(model, 32) == pytest.approx(sum(map(math.log, norms)), rel=1e-6)
    # freshly built Fixup nets have zero layers: SC = 0, log SC = -inf
    assert spectral_complexity(build_model("resnet8", 10), 32) == 0.0
