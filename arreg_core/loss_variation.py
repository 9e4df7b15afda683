"""Maximal loss variation under l-inf perturbations (appendix B.5, Fig. 8, Table 1).

For every test example x and attack strength eps (0-255 scale), the paper generates an
adversarial example x' in the l-inf ball of radius eps around x and reports the mean and std
over the test set of |l(x') - l(x)|, l the cross entropy. The paper states neither the attack's
steps nor its step size. We use l-inf PGD (the paper's attack, appendix B.1) maximising the
cross entropy: a uniform random start in the ball, then `steps` = 10 signed-gradient steps of
eps/4 (step_frac = 0.25), each projected onto the ball and the [0, 1] box, from a generator
seeded by (seed, eps). The variation of an example is the largest loss among the clean point,
the start and every iterate, minus the clean loss: the maximal loss change found, >= 0, and
exactly 0 at eps = 0 (no attack is run there). Every example counts, correct or not, as in B.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .attacks import pgd_linf, to_unit_scale
from .data import iterate_batches, test_view
from .device import epoch_generator, prepare_device

__all__ = ["DEFAULT_EPS", "max_loss_increase", "loss_variation"]

DEFAULT_EPS = (1.0, 2.0, 4.0)  # Table 1's attack strengths, 0-255 scale


def max_loss_increase(model, x, y, eps: float, step: float, steps: int, random_start: bool = True,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Per example: max over the start and the `steps` PGD iterates (l-inf ball of radius eps,
    [0, 1] scale) of l(x') - l(x), clipped below at 0 (the clean point is a candidate).
    The iterates are `attacks.pgd_linf`'s, whose loss function records each one's losses."""
    x = x.detach()
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y, reduction="none")
    best = clean.clone()
    if eps == 0:
        return best - clean

    def recording_loss(logits, target):  # the start and every iterate but the last pass here
        nonlocal best
        losses = F.cross_entropy(logits, target, reduction="none")
        best = torch.maximum(best, losses.detach())
        return losses.sum()

    x_adv = pgd_linf(model, x, y, eps, step, steps, random_start=random_start, generator=generator,
                     loss_fn=recording_loss)
    with torch.no_grad():
        best = torch.maximum(best, F.cross_entropy(model(x_adv), y, reduction="none"))
    return best - clean


def loss_variation(model, x_uint8: torch.Tensor, y: torch.Tensor, eps=DEFAULT_EPS, *, steps: int = 10,
                   step_frac: float = 0.25, random_start: bool = True, seed: int = 0, transform: str = "none",
                   batch_size: int = 500, device="auto") -> dict:
    """Table 1 for one network: for each eps (0-255 scale) the per-example maximal loss
    variation (see the module docstring), its mean and population std over the examples.

    Returns {"eps": (E,), "mean": (E,), "std": (E,), "values": (E, N) float32, "clean_loss": (N,)}
    as numpy arrays. The model is put in eval mode."""
    device = prepare_device(device)
    model.eval()
    eps = [float(e) for e in eps]
    if any(e < 0 for e in eps):
        raise ValueError(f"attack strengths must be >= 0 (0-255 scale), got {eps}")
    values = np.zeros((len(eps), len(y)), dtype=np.float32)
    clean = []
    for i, e in enumerate(eps):
        generator = epoch_generator(seed, round(e * 1000), device, stream=3)  # one stream per eps
        lo = 0
        for x, yb in iterate_batches(x_uint8, y, batch_size, device=device):
            x = test_view(x, transform)
            v = max_loss_increase(model, x, yb, to_unit_scale(e), to_unit_scale(step_frac * e), steps, random_start,
                                  generator)
            values[i, lo:lo + len(yb)] = v.float().cpu().numpy()
            lo += len(yb)
    with torch.no_grad():
        for x, yb in iterate_batches(x_uint8, y, batch_size, device=device):
            clean.append(F.cross_entropy(model(test_view(x, transform)), yb, reduction="none").float().cpu())
    return {"eps": np.asarray(eps, dtype=np.float64),
            "mean": values.astype(np.float64).mean(1) if len(y) else np.full(len(eps), np.nan),
            "std": values.astype(np.float64).std(1) if len(y) else np.full(len(eps), np.nan),
            "values": values, "clean_loss": torch.cat(clean).numpy() if clean else np.zeros(0, np.float32)}
