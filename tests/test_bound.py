"""Theorem 3.1's quantities (eq. 5): smallest singular values, class-vector distances and the
instance-space margin, against brute force and a linear model's exact distances."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from arreg_core.bound import (eq5_summary, flip_search, instance_space_margin, last_layer, min_row_distance,
                              pgd_l2, smallest_singular_values)
from arreg_core.models import build_model
from arreg_core.spectrum import conv_operator_matrix, layer_singular_values
from helpers import randomize


def test_min_row_distance_matches_loop():
    w = torch.randn(12, 7, generator=torch.Generator().manual_seed(0))
    w[9] = w[4] + 0.01  # a clear minimum
    d, pair = min_row_distance(w)
    brute = min((torch.dist(w[i].double(), w[j].double()).item(), (i, j))
                for i, j in itertools.permutations(range(12), 2))
    assert d == pytest.approx(brute[0], rel=1e-12) and set(pair) == {4, 9}
    with pytest.raises(ValueError):
        min_row_distance(torch.ones(1, 3))


def test_product_of_smallest_singular_values_is_the_per_layer_minima():
    model = randomize(build_model("resnet8", 10))
    s = smallest_singular_values(model, 8)  # 8x8 inputs keep it fast; the code path is that of 32x32
    layers = layer_singular_values(model, 8)[:-1]  # W^1..W^{L-1}: all but the classifier
    assert s["names"] == [r["name"] for r in layers] and len(s["names"]) == 7
    assert np.array_equal(s["sigma_min"], [r["min"] for r in layers])
    assert s["log_prod_sigma_min"] == pytest.approx(sum(math.log(r["min"]) for r in layers), rel=1e-12)
    assert s["prod_sigma_min"] == pytest.approx(math.prod(r["min"] for r in layers), rel=1e-9)
    assert np.array_equal(s["sigma_min"], s["sigma_min_nonzero"])
    assert last_layer(model) is model.fc


def test_sigma_min_is_the_dense_operators_min_m_n_th_singular_value():
    # a stride-2 conv maps 4*8*8 inputs to 6*4*4 outputs: 96 singular values, the rest is null space
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(96, 5))
    randomize(model, 1)
    s = smallest_singular_values(model, 8)
    dense = [torch.linalg.svdvals(conv_operator_matrix(model[i].weight.double(), 8, stride))
             for i, stride in ((0, 1), (2, 2))]
    assert [d.numel() for d in dense] == [3 * 64, 6 * 16]
    assert np.allclose(s["sigma_min"], [d.min().item() for d in dense], rtol=1e-4)


def test_dead_channel_gives_zero_and_nonzero_minimum():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(64, 3))
    randomize(model, 2)
    with torch.no_grad():
        model[2].weight[:, 1] = 0  # input channel 1 unused: a zero column at every frequency
    s = smallest_singular_values(model, 4)
    # float32 round-off leaves ~1e-8 where the exact value is 0; "nonzero" means > 1e-6 * max
    assert s["sigma_min"][1] < 1e-6 < 1e-3 < s["sigma_min_nonzero"][1]
    assert np.array_equal(s["sigma_min"][[0]], s["sigma_min_nonzero"][[0]])
    assert s["log_prod_sigma_min"] < s["log_prod_sigma_min_nonzero"]


# ---- instance-space margin ----

def linear_problem(n=40, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, classes)).double()
    w = torch.randn(classes, 48, generator=g, dtype=torch.float64)
    with torch.no_grad():  # boundaries pass near the middle of the box, where the examples are
        model[1].weight.copy_(w)
        model[1].bias.copy_(-0.5 * w.sum(1) + 0.2 * torch.randn(classes, generator=g, dtype=torch.float64))
    x = 0.5 + 0.05 * torch.randn(n, 3, 4, 4, generator=g, dtype=torch.float64)
    return model.eval(), x


def exact_distance(model, x):
    """Distance from x to the boundary of its predicted class's region, the polytope
    {s_c >= s_j for all j}: the nearest of its facets' hyperplanes (the box is not binding)."""
    w = model[1].weight
    s = model(x).detach()
    c = s.argmax(1)
    gaps = s.gather(1, c[:, None]) - s  # s_c - s_j >= 0
    dist = gaps / (w[c][:, None, :] - w[None]).norm(dim=2)  # (n, classes)
    dist[torch.arange(len(x)), c] = math.inf
    return dist.min(1).values


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_bisection_matches_exact_linear_distance(seed):
    model, x = linear_problem(seed=seed)
    exact = exact_distance(model, x)
    # the nearest boundary point is inside the box: the exact distance is the unconstrained one
    assert exact.max() < 0.25 and 0.25 < x.min() and x.max() < 0.75 and exact.min() < 5e-3
    assert len(model(x).argmax(1).unique()) == 5
    out = instance_space_margin(model, x, r_max=4.0, steps=20, bisect_steps=10, rtol=0.01)  # defaults
    r = out["radius"]
    assert torch.all(torch.isfinite(r))
    assert torch.all(r >= exact - 1e-9)  # a perturbation that changes the prediction is never shorter
    assert torch.all(r <= 1.03 * exact), (r / exact).max()
    assert torch.all(out["lo"] <= r) and torch.equal(out["pred"], model(x).argmax(1))
    # the untargeted attack alone can miss the nearest boundary (another class than the runner-up)
    alone = instance_space_margin(model, x, n_targets=0)["radius"]
    assert torch.all(alone >= exact - 1e-9) and torch.all(alone <= 1.25 * exact)


def test_labels_mark_wrong_predictions_nan_and_unreachable_inf():
    model, x = linear_problem(n=12, seed=1)
    pred = model(x).argmax(1)
    y = pred.clone()
    y[:3] = (pred[:3] + 1) % 5
    out = instance_space_margin(model, x, y, r_max=2.0, steps=5, bisect_steps=3)
    assert torch.all(torch.isnan(out["radius"][:3])) and torch.all(torch.isfinite(out["radius"][3:]))
    tiny = instance_space_margin(model, x, r_max=1e-6, steps=3, bisect_steps=2)
    assert torch.all(torch.isinf(tiny["radius"]))


def test_flip_search_and_pgd_l2_stay_in_the_ball_and_box():
    model, x = linear_problem(n=16, seed=2)
    radius = torch.linspace(0.01, 0.5, 16, dtype=torch.float64)
    pred = model(x).argmax(1)
    for targets in (None, torch.tensor([[(p + 1) % 5, (p + 2) % 5] for p in pred.tolist()])):
        flipped, norm = flip_search(model, x, pred, radius, 10, targets)
        assert flipped.shape == (16,) and 0 < flipped.sum() < 16
        assert torch.all(norm[flipped] <= radius[flipped] + 1e-12) and torch.all(torch.isinf(norm[~flipped]))
    x_adv = pgd_l2(model, x, pred, radius, 10)
    assert torch.all((x_adv - x).flatten(1).norm(dim=1) <= radius + 1e-12)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert torch.all(F.cross_entropy(model(x_adv), pred, reduction="none") >
                         F.cross_entropy(model(x), pred, reduction="none"))
    start = pgd_l2(model, x, pred, 0.1, 0, random_start=True, generator=torch.Generator().manual_seed(0))
    assert torch.all((start - x).flatten(1).norm(dim=1) <= 0.1 + 1e-12)


def test_eq5_summary_by_hand():
    s = eq5_summary(2.0, math.log(0.5), [0.4, 0.1, 0.3, math.inf], [1.0, -0.5, 0.2, 3.0], [True, False, True, True],
                    math.log(0.25))
    assert s["v_min"] == 0.3 and s["v_median"] == pytest.approx(0.35) and s["n_not_found"] == 1
    assert s["u_min_bound"] == pytest.approx(2.0 * 0.5 * 0.3)
    assert s["u_min_bound_nonzero"] == pytest.approx(2.0 * 0.25 * 0.3)
    assert s["empirical_u_min"] == 0.2 and s["n_correct"] == 3
    assert eq5_summary(2.0, -math.inf, [0.3], [1.0], [True])["u_min_bound"] == 0.0
