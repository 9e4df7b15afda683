"""Margins and confidences of predictions (Definition 3; section 4.2.1, Fig. 4, 5a/b; appendix B.3).

The margin operator M(s, y) = s_y - max_{i != y} s_i (Definition 3) of a logit vector s: positive
when the example is classified correctly, negative when not, near zero at the decision boundary.
Section 4.2.1 also reads the softmax probability of the true class (Fig. 5a) and the per-example
cross entropy (Fig. 5b); appendix B.3 argues from the skewness of the margin distribution.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

__all__ = ["other_logits", "margin", "runner_up", "true_class_probability", "per_example_loss", "margin_stats"]


def _check(logits: torch.Tensor, y: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (N, L) with L >= 2 classes, got shape {tuple(logits.shape)}")
    if y.shape != logits.shape[:1]:
        raise ValueError(f"labels must be (N,) = ({logits.shape[0]},), got shape {tuple(y.shape)}")


def other_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The logits with each example's entry y set to -inf: the s_i, i != y, of Definition 3."""
    return logits.scatter(1, y.to(logits.device)[:, None], float("-inf"))


def runner_up(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmax_{i != y} s_i: the strongest class other than y (the i of Definition 3)."""
    _check(logits, y)
    return other_logits(logits, y).argmax(1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """M(s, y) = s_y - max_{i != y} s_i per example (Definition 3), batched: (N, L), (N,) -> (N,)."""
    _check(logits, y)
    true = logits.gather(1, y.to(logits.device)[:, None])[:, 0]
    return true - other_logits(logits, y).amax(1)


def true_class_probability(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(softmax(s))_y, the estimated probability of the target class (section 4.2.1, Fig. 5a)."""
    _check(logits, y)
    return logits.float().softmax(1).gather(1, y.to(logits.device)[:, None])[:, 0]


def per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross entropy -log (softmax(s))_y of every example (section 4.2.1, Fig. 5b)."""
    _check(logits, y)
    return F.cross_entropy(logits.float(), y.to(logits.device), reduction="none")


def margin_stats(m, t: float = 1.0) -> dict:
    """Summary of a margin sample: mean, std (population, ddof 0), skewness (scipy's biased
    g1, the sample's third standardised moment; appendix B.3), median, the fraction with
    |m| < t ("concentrated around zero", section 4.2.1) and the fraction negative (the error
    rate when m are margins w.r.t. the true labels). NaNs are dropped; n counts what is left."""
    m = np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m, dtype=np.float64).ravel()
    m = m[~np.isnan(m)]
    if m.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "skewness": nan, "median": nan,
                "frac_near_zero": nan, "frac_negative": nan, "t": float(t)}
    return {
        "n": int(m.size),
        "mean": float(m.mean()),
        "std": float(m.std()),
        "skewness": float(scipy.stats.skew(m)) if m.size > 1 and m.std() > 0 else float("nan"),
        "median": float(np.median(m)),
        "frac_near_zero": float(np.mean(np.abs(m) < t)),
        "frac_negative": float(np.mean(m < 0)),
        "t": float(t),
    }
