"""Evaluation as the paper's tables define it (Tables 3-6, appendix D.2).

Clean accuracy (percent) and mean cross entropy on the training set (without augmentation) and
the test set; accuracy gap = train - test, loss gap = test - train; PGD accuracy = percent of the
correctly classified clean test examples that stay correct under l-inf PGD with the paper's
settings, `PAPER_PGD`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import attacks
from .data import ImageData, iterate_batches, test_view
from .device import epoch_generator, prepare_device

# The paper's evaluation attack (appendix D.2): eps 8, 10 steps of 2, on the 0-255 scale. The same
# numbers as the training attack's defaults (TrainConfig.eps, attack_step, attack_steps; appendix
# B.1), which a run may change: this one stays fixed whatever the network was trained with.
PAPER_PGD = {"eps": 8.0, "step": 2.0, "steps": 10}


@torch.no_grad()
def predict_logits(model, x_uint8: torch.Tensor, *, transform: str = "none", batch_size: int = 500,
                   device="auto") -> torch.Tensor:
    """Logits of every image (uint8, N x 3 x H x W), in eval mode, returned on the CPU."""
    device = prepare_device(device)
    model.eval()
    out = []
    dummy = torch.zeros(len(x_uint8), dtype=torch.long)
    for x, _ in iterate_batches(x_uint8, dummy, batch_size, device=device):
        out.append(model(test_view(x, transform)).float().cpu())
    return torch.cat(out)


def accuracy_and_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy in percent, mean cross entropy)."""
    y = y.to(logits.device)
    return (100.0 * (logits.argmax(1) == y).float().mean().item(),
            F.cross_entropy(logits, y).item())


def pgd_accuracy(model, x_uint8, y, *, eps: float = PAPER_PGD["eps"], step: float = PAPER_PGD["step"],
                 steps: int = PAPER_PGD["steps"],
                 transform: str = "none", batch_size: int = 500, seed: int = 0, device="auto") -> float:
    """Percent of the clean-correct examples still classified correctly after l-inf PGD
    (appendix D.2; eps and step on the 0-255 scale). Random start from a seeded generator."""
    device = prepare_device(device)
    model.eval()
    generator = epoch_generator(seed, 0, device, stream=2)
    correct_clean = robust = 0
    for x, yb in iterate_batches(x_uint8, y, batch_size, device=device):
        x = test_view(x, transform)
        with torch.no_grad():
            keep = model(x).argmax(1) == yb
        if not keep.any():
            continue
        x, yb = x[keep], yb[keep]
        x_adv = attacks.pgd_linf(model, x, yb, attacks.to_unit_scale(eps), attacks.to_unit_scale(step), steps,
                                 random_start=True, generator=generator)
        with torch.no_grad():
            robust += (model(x_adv).argmax(1) == yb).sum().item()
        correct_clean += len(yb)
    return 100.0 * robust / max(correct_clean, 1)


def evaluate(model, data: ImageData, *, pgd: dict | None = PAPER_PGD, batch_size: int = 500,
             device="auto") -> dict:
    """The metrics of the paper's tables, one dict: train/test accuracy and loss, their gaps,
    and (unless pgd is None) PGD accuracy."""
    train_logits = predict_logits(model, data.x_train, transform=data.test_transform, batch_size=batch_size, device=device)
    test_logits = predict_logits(model, data.x_test, transform=data.test_transform, batch_size=batch_size, device=device)
    train_acc, train_loss = accuracy_and_loss(train_logits, data.y_train)
    test_acc, test_loss = accuracy_and_loss(test_logits, data.y_test)
    metrics = {"train_acc": train_acc, "test_acc": test_acc, "gap_acc": train_acc - test_acc,
               "train_loss": train_loss, "test_loss": test_loss, "gap_loss": test_loss - train_loss}
    if pgd is not None:
        metrics["pgd_acc"] = pgd_accuracy(model, data.x_test, data.y_test, transform=data.test_transform,
                                          batch_size=batch_size, device=device, **pgd)
    return metrics
