"""Small helpers shared by several test files."""
import torch


def randomize(model, seed=0):
    """Replace every parameter by seeded N(0, 0.2^2) noise (a fresh Fixup net has all-zero layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model
