"""The margin operator (Definition 3) and the section 4.2.1 confidences against brute force."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from arreg_core.margins import margin, margin_stats, per_example_loss, runner_up, true_class_probability


def brute_margin(logits, y):
    out = []
    for s, t in zip(logits.tolist(), y.tolist()):
        out.append(s[t] - max(v for i, v in enumerate(s) if i != t))
    return torch.tensor(out, dtype=logits.dtype)


@pytest.mark.parametrize("n, classes", [(1, 2), (7, 3), (64, 10), (33, 100)])
def test_margin_matches_python_loop(n, classes):
    g = torch.Generator().manual_seed(n)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    m = margin(logits, y)
    assert m.shape == (n,) and torch.equal(m, brute_margin(logits, y))
    # positive exactly when the prediction is the label (no ties in random logits)
    assert torch.equal(m > 0, logits.argmax(1) == y)
    other = runner_up(logits, y)
    assert torch.all(other != y)
    assert torch.equal(logits.gather(1, y[:, None])[:, 0] - logits.gather(1, other[:, None])[:, 0], m)


def test_margin_ties_and_shapes():
    logits = torch.tensor([[1.0, 1.0, 0.0], [2.0, -1.0, 5.0]])
    assert margin(logits, torch.tensor([0, 2])).tolist() == [0.0, 3.0]
    with pytest.raises(ValueError):
        margin(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        margin(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))


def test_probability_and_loss_are_consistent():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 10, generator=g) * 4, torch.randint(0, 10, (50,), generator=g)
    p, loss = true_class_probability(logits, y), per_example_loss(logits, y)
    full = logits.softmax(1)
    assert torch.allclose(full.sum(1), torch.ones(50))
    assert torch.allclose(p, torch.stack([full[i, t] for i, t in enumerate(y.tolist())]))
    assert torch.allclose(loss, -p.log(), atol=1e-5)
    assert torch.all((p > 0) & (p < 1))
    # a positive margin means the true class has the largest probability
    assert torch.equal(margin(logits, y) > 0, p == full.max(1).values)


def test_stats_of_a_skewed_sample_match_scipy():
    rng = np.random.default_rng(0)
    m = rng.exponential(2.0, 5000) - 1.0
    s = margin_stats(torch.from_numpy(m), t=0.5)
    assert s["n"] == 5000
    assert s["mean"] == pytest.approx(m.mean()) and s["std"] == pytest.approx(m.std())
    assert s["skewness"] == pytest.approx(scipy.stats.skew(m)) and 1.8 < s["skewness"] < 2.2  # exponential: 2
    assert s["median"] == pytest.approx(np.median(m))
    assert s["frac_near_zero"] == pytest.approx(np.mean(np.abs(m) < 0.5))
    assert s["frac_negative"] == pytest.approx(np.mean(m < 0))


def test_stats_hand_made_and_degenerate():
    s = margin_stats([-2.0, -0.5, 0.25, 1.0, 3.0, float("nan")], t=1.0)
    assert s["n"] == 5 and s["median"] == 0.25 and s["frac_near_zero"] == 0.4 and s["frac_negative"] == 0.4
    assert s["skewness"] == pytest.approx(scipy.stats.skew([-2.0, -0.5, 0.25, 1.0, 3.0]))
    assert math.isnan(margin_stats([])["mean"]) and math.isnan(margin_stats([1.0, 1.0])["skewness"])
