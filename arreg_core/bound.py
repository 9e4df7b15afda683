"""The quantities of Theorem 3.1 (eq. 4, 5; Definition 6; appendix C), which the paper names but
never computes.

Eq. (5), as we read it (the extracted text is garbled; the proof in appendix C states the same
inequality, "u_min >= min ||w_y - w_y'||_2 prod sigma^i_min v_min"):

    u_min = min_{y != y'} ||w_y - w_y'||_2 * prod_{i=1}^{L-1} sigma^i_min * v_min

a lower bound on the margins (Definition 3) of the examples in the covering balls that hold
training examples, where
  - w_y are the rows of the last layer's weight matrix W^L,
  - sigma^i_min is the smallest singular value of layer i's weight matrix, i < L,
  - v_min is the smallest instance-space margin (Definition 6): the l2 distance from an
    example to the closest point of the decision boundary.

What we compute:
  - sigma^i_min: the smallest of the min(m, n) singular values of layer i's operator at its
    input size (`spectrum.layer_singular_values`, circular-padding model). A stride-2 conv maps
    to a smaller space and has a null space; the proof (eq. 14) only uses directions orthogonal
    to it, so the min(m, n)-th singular value (the smallest nonzero one when the operator has
    full rank) is the one that exists and is the one we use. We also report the smallest value
    above 1e-6 * the layer's largest (`sigma_min_nonzero`), which differs only for a rank-
    deficient layer (e.g. an untrained Fixup layer, all zero). Layers are every conv/linear
    layer but the last, in forward order; the fixed input normalisation, pooling and residual
    shortcuts are not weight layers and are left out, as in the paper (the theorem is stated
    for plain ReLU networks: for ResNets the product is the formula's value, not a bound).
  - v(x): estimated by bisection on the l2 radius r with a batched l2 PGD attack on the margin
    w.r.t. the predicted class (`instance_space_margin`). The value returned is the norm of the
    smallest prediction-changing perturbation found, so it is an upper bound on the true v(x)
    (exact when the attack is optimal); it is measured in the model's input space, [0, 1]
    pixels. v_min is the smallest over the correctly classified examples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .margins import other_logits
from .spectrum import layer_singular_values

__all__ = ["smallest_singular_values", "min_row_distance", "pgd_l2", "flip_search",
           "instance_space_margin", "eq5_summary", "DEFAULT_SEARCH"]

# Bisection defaults: [0, 1]-scale l2 radii; 20 PGD steps of 2.5 r / steps (Madry et al., 2018);
# an untargeted attack plus targeted ones at the 3 strongest other classes.
DEFAULT_SEARCH = {"r_max": 4.0, "steps": 20, "bisect_steps": 10, "rtol": 0.01, "n_targets": 3}


# ----------------------------------------------------------------------------- weights

def smallest_singular_values(model: nn.Module, input_size: int, nonzero_rtol: float = 1e-6) -> dict:
    """sigma^i_min of layers i = 1..L-1 (all conv/linear layers but the last) and their product
    (eq. 5): per-layer names, minima, smallest values above nonzero_rtol * max, and the sums of
    logs (the product of ~50 small numbers under/overflows; exp of the log sum is given too)."""
    layers = layer_singular_values(model, input_size)[:-1]
    mins = np.array([r["min"] for r in layers], dtype=np.float64)
    nonzero = np.array([r["singular_values"][r["singular_values"] > nonzero_rtol * r["max"]].min().item()
                        if r["max"] > 0 else 0.0 for r in layers], dtype=np.float64)

    def log_prod(v):
        return float(np.sum(np.log(v))) if np.all(v > 0) else -math.inf

    return {"names": [r["name"] for r in layers], "sigma_min": mins, "sigma_min_nonzero": nonzero,
            "log_prod_sigma_min": log_prod(mins), "log_prod_sigma_min_nonzero": log_prod(nonzero),
            "prod_sigma_min": float(np.prod(mins)), "prod_sigma_min_nonzero": float(np.prod(nonzero))}


def last_layer(model: nn.Module) -> nn.Linear:
    """The classifier W^L: the last nn.Linear module of the model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to read the class vectors w_y from")
    return linears[-1]


def min_row_distance(weight: torch.Tensor) -> tuple[float, tuple[int, int]]:
    """min_{y != y'} ||w_y - w_y'||_2 over the rows of W^L (eq. 5), and the pair attaining it."""
    w = weight.detach().double()
    if w.dim() != 2 or w.shape[0] < 2:
        raise ValueError(f"need a (classes >= 2, features) weight matrix, got shape {tuple(w.shape)}")
    d = torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist")
    d.fill_diagonal_(math.inf)
    k = int(d.argmin())
    return float(d.flatten()[k]), (k // d.shape[1], k % d.shape[1])


# ----------------------------------------------------------------------------- l2 attack

def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _per_example(r, x: torch.Tensor) -> torch.Tensor:
    """A radius (scalar or (N,)) as an (N, 1, 1, ...) tensor broadcasting against x."""
    r = torch.as_tensor(r, dtype=x.dtype, device=x.device).expand(x.shape[0])
    return r.view(-1, *([1] * (x.dim() - 1)))


def _l2_iterates(model, x, y, radius, steps, step, loss_fn, delta):
    """Yield (iterate, logits) for the start and each of `steps` l2 PGD steps: normalised-gradient
    ascent on loss_fn, projection onto the l2 ball of per-example radius and onto [0, 1]."""
    r, a = _per_example(radius, x), _per_example(step, x)
    for k in range(steps + 1):
        xa = (x + delta).detach().requires_grad_(k < steps)
        with torch.set_grad_enabled(k < steps):
            logits = model(xa)
        yield xa.detach(), logits.detach()
        if k == steps:
            return
        (g,) = torch.autograd.grad(loss_fn(logits, y), xa)
        delta = delta + a * g / _per_example(_norms(g).clamp_min(1e-12), x)
        delta = delta * (r / _per_example(_norms(delta), x).clamp_min(1e-12)).clamp(max=1.0)
        delta = ((x + delta).clamp(0.0, 1.0) - x).detach()


def _boundary_loss(target: torch.Tensor):
    """Sum over examples of s_t - s_y, t the example's target class, or the strongest class
    other than y where the target is -1 (-M(s, y), Definition 3): ascent moves every example
    towards the boundary between y and t (y and any class)."""
    def loss_fn(logits, y):
        others = other_logits(logits, y)
        score = torch.where(target >= 0, others.gather(1, target.clamp(min=0)[:, None])[:, 0], others.amax(1))
        return (score - logits.gather(1, y[:, None])[:, 0]).sum()
    return loss_fn


def _start(x, radius, random_start, generator):
    if not random_start:
        return torch.zeros_like(x)
    u = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    u = u / _per_example(_norms(u).clamp_min(1e-12), x)
    s = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
    return ((x + u * _per_example(s, x) * _per_example(radius, x)).clamp(0.0, 1.0) - x)


def pgd_l2(model, x, y, radius, steps: int, step=None, random_start: bool = False,
           generator: torch.Generator | None = None, loss_fn=None) -> torch.Tensor:
    """l2 PGD (Madry et al., 2018) in [0, 1] pixel space: `steps` normalised-gradient steps of
    size `step` (default 2.5 radius / steps) on loss_fn (default: cross entropy), each projected
    onto the l2 ball of radius `radius` (a float or one per example) and onto [0, 1]."""
    loss_fn = loss_fn or (lambda logits, t: nn.functional.cross_entropy(logits, t, reduction="sum"))
    x = x.detach()
    radius = torch.as_tensor(radius, dtype=x.dtype, device=x.device).expand(x.shape[0])
    step = 2.5 * radius / max(steps, 1) if step is None else step
    *_, (x_adv, _) = _l2_iterates(model, x, y, radius, steps, step, loss_fn, _start(x, radius, random_start, generator))
    return x_adv


def flip_search(model, x, label, radius, steps: int, targets: torch.Tensor | None = None):
    """l2 attacks within per-example `radius`, from x itself, on the margin w.r.t. `label`: one
    untargeted (towards the strongest other class, as it changes) and, for each column t of
    `targets` (N, k), one targeted at s_t - s_label; all k + 1 run as one batch. Returns (flipped:
    whether some iterate of some attack has a prediction other than label, norm: the smallest
    ||x' - x|| of such an iterate, inf where none)."""
    x = x.detach()
    radius = torch.as_tensor(radius, dtype=x.dtype, device=x.device).expand(x.shape[0])
    target = torch.full((x.shape[0], 1), -1, dtype=torch.long, device=x.device)
    if targets is not None:
        target = torch.cat([target, targets.to(x.device)], dim=1)
    k = target.shape[1]
    if k > 1:
        x, label, radius = x.repeat_interleave(k, 0), label.repeat_interleave(k), radius.repeat_interleave(k)
    best = torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
    for xa, logits in _l2_iterates(model, x, label, radius, steps, 2.5 * radius / max(steps, 1),
                                   _boundary_loss(target.flatten()), torch.zeros_like(x)):
        flipped = logits.argmax(1) != label
        best = torch.where(flipped, torch.minimum(best, _norms(xa - x)), best)
    best = best.view(-1, k).amin(1)
    return torch.isfinite(best), best


# ----------------------------------------------------------------------------- instance-space margin

def instance_space_margin(model, x, y=None, *, r_max: float = DEFAULT_SEARCH["r_max"],
                          steps: int = DEFAULT_SEARCH["steps"], bisect_steps: int = DEFAULT_SEARCH["bisect_steps"],
                          rtol: float = DEFAULT_SEARCH["rtol"], n_targets: int = DEFAULT_SEARCH["n_targets"]) -> dict:
    """Estimated l2 distance v(x) from each example to the decision boundary (Definition 6), in
    [0, 1] pixel units, batched over the examples (float images, model in eval mode).

    Bracketing: hi is the norm of the smallest prediction-changing perturbation found so far
    (a certified upper bound on v), lo a radius where the attack failed (0 at first). The attack
    runs at r_max first; each of the `bisect_steps` rounds then attacks the still-open examples
    (hi > (1 + rtol) lo) at r = hi / 2 while lo = 0, else at the geometric midpoint sqrt(lo hi),
    and moves hi (to the norm found) or lo (to r). Each attack is `flip_search` with `steps`
    steps: untargeted on the margin, plus one targeted at each of the n_targets classes with the
    highest clean logits after the prediction (1 + n_targets times the cost of one). The
    untargeted attack alone follows the runner-up by logit, which need not be the class whose
    boundary is nearest: on random linear models it overestimates distances by up to 23%, with
    3 targets by < 1.1%; on a briefly trained resnet8 (synthetic data, 60 test examples) adding
    the 3 targets shortened 20% of the radii, by up to 47% (its cost: README, "Measured here").

    The decision boundary is that of the predicted class (Definition 2 measures robustness
    w.r.t. the prediction). With labels y, examples whose prediction differs from y get NaN
    (v is then a distance to a wrong decision); with y None every example gets its v.
    Examples where no flip was found within r_max get inf.
    Returns {"radius", "lo", "hi", "pred"} tensors of shape (N,)."""
    if r_max <= 0 or steps < 1 or bisect_steps < 0 or n_targets < 0:
        raise ValueError("need r_max > 0, steps >= 1, bisect_steps >= 0, n_targets >= 0")
    x = x.detach()
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1)
    targets = None
    if n_targets:
        targets = other_logits(logits, pred).topk(min(n_targets, logits.shape[1] - 1), dim=1).indices
    lo = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    flipped, hi = flip_search(model, x, pred, torch.full_like(lo, r_max), steps, targets)
    lo = torch.where(flipped, lo, torch.full_like(lo, r_max))
    for _ in range(bisect_steps):
        open_ = torch.isfinite(hi) & (hi > (1 + rtol) * lo)
        if not open_.any():
            break
        idx = open_.nonzero()[:, 0]
        l, h = lo[idx], hi[idx]
        r = torch.where(l > 0, (l * h).sqrt(), h / 2)
        found, norm = flip_search(model, x[idx], pred[idx], r, steps, None if targets is None else targets[idx])
        hi[idx] = torch.where(found, torch.minimum(h, norm), h)
        lo[idx] = torch.where(found, l, r)
    radius = hi.clone()
    if y is not None:
        radius[pred != y.to(pred.device)] = math.nan
    return {"radius": radius, "lo": lo, "hi": hi, "pred": pred}


# ----------------------------------------------------------------------------- eq. (5)

def eq5_summary(row_distance: float, log_prod_sigma_min: float, radius, margins, correct,
                log_prod_sigma_min_nonzero: float | None = None) -> dict:
    """u_min of eq. (5) from its parts: min row distance * prod sigma^i_min * v_min, with v_min
    the smallest finite estimated instance-space margin among the correctly classified examples;
    also with the smallest nonzero sigma^i_min when given (a layer with a dead channel has an
    exact zero singular value, which makes the product 0), the median v, and the smallest margin
    (Definition 3) among the correct examples: the empirical u_min the formula lower-bounds.
    Logs are natural; u values are exp(log) (0 / inf on under/overflow)."""
    radius, margins = np.asarray(radius, np.float64), np.asarray(margins, np.float64)
    correct = np.asarray(correct, bool)
    ok = correct & np.isfinite(radius)
    v_min = float(radius[ok].min()) if ok.any() else math.nan
    log_v = math.log(v_min) if v_min > 0 else (-math.inf if v_min == 0 else math.nan)
    log_d = math.log(row_distance) if row_distance > 0 else -math.inf

    def exp(v):
        return math.exp(v) if v < 709.0 else (math.inf if v == v else v)

    out = {"min_row_distance": row_distance, "log_prod_sigma_min": log_prod_sigma_min,
           "v_min": v_min, "v_median": float(np.median(radius[ok])) if ok.any() else math.nan,
           "n_correct": int(correct.sum()), "n_not_found": int((correct & ~np.isfinite(radius)).sum()),
           "log_u_min_bound": log_d + log_prod_sigma_min + log_v,
           "empirical_u_min": float(margins[correct].min()) if correct.any() else math.nan}
    out["u_min_bound"] = exp(out["log_u_min_bound"])
    if log_prod_sigma_min_nonzero is not None:
        out["log_prod_sigma_min_nonzero"] = log_prod_sigma_min_nonzero
        out["log_u_min_bound_nonzero"] = log_d + log_prod_sigma_min_nonzero + log_v
        out["u_min_bound_nonzero"] = exp(out["log_u_min_bound_nonzero"])
    return out
