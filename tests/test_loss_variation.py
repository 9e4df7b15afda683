"""Maximal loss variation (appendix B.5, Table 1) on a briefly trained network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arreg_core import attacks
from arreg_core.data import load_data
from arreg_core.loss_variation import loss_variation, max_loss_increase
from arreg_core.train import TrainConfig, fit


@pytest.fixture(scope="module")
def trained():
    data = load_data("synthetic", n_train=500, n_test=200)
    config = TrainConfig(dataset="synthetic", arch="resnet8", n_train=500, n_test=200, epochs=8, milestones=(7,),
                         batch_size=32, lr=0.1, method="none", eps=0)
    model, _ = fit(config, data, "cpu", progress=False)
    return model.eval(), data


def test_zero_at_eps_zero_and_growing_with_eps(trained):
    model, data = trained
    out = loss_variation(model, data.x_test, data.y_test, (0, 1, 2, 4), device="cpu")
    assert out["values"].shape == (4, 200) and out["values"].dtype == np.float32
    assert np.all(out["values"][0] == 0) and out["mean"][0] == 0 and out["std"][0] == 0
    assert np.all(out["values"] >= 0)
    assert out["mean"][1] > 0 and np.all(np.diff(out["mean"]) > 0)
    assert np.allclose(out["mean"], out["values"].astype(np.float64).mean(1))
    assert np.allclose(out["std"], out["values"].astype(np.float64).std(1))
    with torch.no_grad():
        clean = F.cross_entropy(model(data.x_test.float() / 255), data.y_test, reduction="none")
    assert np.allclose(out["clean_loss"], clean.numpy(), atol=1e-5)


def test_seeded_and_each_eps_independent(trained):
    model, data = trained
    x, y = data.x_test[:96], data.y_test[:96]
    a = loss_variation(model, x, y, (1, 2), device="cpu", batch_size=64)
    b = loss_variation(model, x, y, (2,), device="cpu", batch_size=64)
    assert np.array_equal(a["values"][1], b["values"][0])


def test_at_least_the_final_pgd_iterate(trained):
    model, data = trained
    x, y = data.x_test[:64].float() / 255, data.y_test[:64]
    eps, step = 2 / 255, 0.5 / 255
    v = max_loss_increase(model, x, y, eps, step, 10, generator=torch.Generator().manual_seed(3))
    x_adv = attacks.pgd_linf(model, x, y, eps, step, 10, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        final = F.cross_entropy(model(x_adv), y, reduction="none") - F.cross_entropy(model(x), y, reduction="none")
    assert (x_adv - x).abs().max() <= eps + 1e-7
    assert torch.all(v >= final - 1e-5) and torch.all(v >= 0)


def test_the_maximum_over_every_iterate(trained):
    """pgd_linf with k steps from the same seed gives the k-th iterate: none may exceed the maximum."""
    model, data = trained
    x, y = data.x_test[:64].float() / 255, data.y_test[:64]
    eps, step = 4 / 255, 2 / 255
    v = max_loss_increase(model, x, y, eps, step, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y, reduction="none")
    per_iterate = []
    for k in range(7):
        x_k = attacks.pgd_linf(model, x, y, eps, step, k, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            per_iterate.append(F.cross_entropy(model(x_k), y, reduction="none") - clean)
    best = torch.stack(per_iterate).amax(0).clamp(min=0)
    assert torch.allclose(v, best, atol=1e-5)


def test_bad_eps():
    with pytest.raises(ValueError, match=">= 0"):
        loss_variation(torch.nn.Identity(), torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.zeros(1, dtype=torch.long),
                       (-1,), device="cpu")
