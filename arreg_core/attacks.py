"""l-inf attacks in [0, 1] pixel space (appendix B.1, B.6; Madry et al., 2018).

Everything a user gives (TrainConfig, profiles, the CLI, notebook parameters, evaluation and
analysis parameters) states eps and step sizes on the paper's 0-255 scale; the attacks take the
[0, 1] scale of the images they perturb. `to_unit_scale` is where the two meet: every caller
converts through it.

Both attacks are batched, differentiate only with respect to the perturbation (no gradient
reaches the model's parameters), and return examples inside the eps-ball and the [0, 1] box.
They leave the model's train/eval mode as they find it: the caller chooses it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_unit_scale(value_255: float) -> float:
    """An attack strength or step size on the paper's 0-255 scale (eps 8) on the [0, 1] scale
    the attacks take (8/255)."""
    return value_255 / 255


def _check(eps, step=None, steps: int | None = None) -> None:
    """Radii and steps given as numbers; a tensor of them, one per image (`stacked.radius`), is
    checked where it is built (checking it here would wait on the device)."""
    if not isinstance(eps, torch.Tensor) and eps < 0:
        raise ValueError(f"eps must be >= 0 (on the [0, 1] scale: to_unit_scale(8) for the paper's 8), got {eps}")
    if step is not None and not isinstance(step, torch.Tensor) and step < 0:
        raise ValueError(f"step size must be >= 0, got {step}")
    if steps is not None and steps < 0:
        raise ValueError(f"number of steps must be >= 0, got {steps}")


def _loss_gradient(model, x, y, loss_fn):
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _project(x_adv, x, eps):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def start_noise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The uniform [0, 1) draw a random start consumes for `x`. Drawn apart from the attack so that
    a CUDA-graphed training step (arreg_core.cuda_graphs) can take it as an input: the same
    generator gives the same start either way."""
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _random_start(x, eps, generator, noise=None):
    noise = start_noise(x, generator) if noise is None else noise
    return _project(x + (2 * noise - 1) * eps, x, eps)


def pgd_linf(model, x, y, eps: float, step: float, steps: int, random_start: bool = True,
             generator: torch.Generator | None = None, loss_fn=None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss: `steps` signed-gradient steps of size `step`,
    each followed by projection onto the l-inf ball of radius `eps` and onto [0, 1].
    The paper's training attack is 10 steps of 2/255 with a random start (appendix B.1). `noise`
    (`start_noise`), when given, is the random start's draw instead of one from `generator`.
    `eps` and `step` may be tensors broadcasting over `x`: a radius per image (`stacked.radius`)."""
    _check(eps, step, steps)
    loss_fn = loss_fn or F.cross_entropy
    x = x.detach()
    x_adv = _random_start(x, eps, generator, noise) if random_start else x.clone()
    for _ in range(steps):
        grad = _loss_gradient(model, x_adv, y, loss_fn)
        x_adv = _project(x_adv + step * grad.sign(), x, eps)
    return x_adv.detach()


def fgsm(model, x, y, eps: float, random_start: bool = False,
         generator: torch.Generator | None = None, loss_fn=None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015; appendix B.6): one step of size eps,
    optionally from a uniform random start in the eps-ball (`noise` as in pgd_linf)."""
    _check(eps)
    loss_fn = loss_fn or F.cross_entropy
    x = x.detach()
    x_start = _random_start(x, eps, generator, noise) if random_start else x
    grad = _loss_gradient(model, x_start, y, loss_fn)
    return _project(x_start + eps * grad.sign(), x, eps).detach()
