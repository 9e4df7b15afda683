import pytest
import torch
import torch.nn.functional as F

from arreg_core.attacks import fgsm, pgd_linf, start_noise, to_unit_scale
from arreg_core.models import build_model


@pytest.fixture(scope="module")
def model_and_batch():
    """A small CIFAR ResNet with random (non-zero) weights and a batch of images."""
    torch.manual_seed(0)
    model = build_model("resnet8", 10)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3 / p[0].numel() ** 0.5)
    model.eval()
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)  # labels the model gets right: attacks have loss to raise
    return model, x, y


def loss_of(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("eps", [0.0, 2 / 255, 8 / 255, 16 / 255])
def test_attacks_stay_in_ball_and_box(model_and_batch, eps):
    model, x, y = model_and_batch
    x = x.clone()
    x[:8] = 0.0  # pixels on the box's edges must stay in [0, 1]
    x[8:16] = 1.0
    for x_adv in (pgd_linf(model, x, y, eps, 2 / 255, 5), fgsm(model, x, y, eps),
                  fgsm(model, x, y, eps, random_start=True)):
        assert x_adv.shape == x.shape and not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_attacks_raise_the_loss_and_pgd_is_at_least_as_strong_as_fgsm(model_and_batch):
    model, x, y = model_and_batch
    eps = 8 / 255
    clean = loss_of(model, x, y)
    fgsm_loss = loss_of(model, fgsm(model, x, y, eps), y)
    pgd_loss = loss_of(model, pgd_linf(model, x, y, eps, 2 / 255, 10, generator=torch.Generator().manual_seed(0)), y)
    assert fgsm_loss.mean() > clean.mean() and pgd_loss.mean() > clean.mean()
    assert (pgd_loss > clean).float().mean() > 0.9
    assert pgd_loss.mean() >= fgsm_loss.mean()


def test_attacks_do_not_touch_parameters_or_mode(model_and_batch):
    model, x, y = model_and_batch
    model.zero_grad(set_to_none=True)
    model.train()
    pgd_linf(model, x, y, 8 / 255, 2 / 255, 2)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_pgd_random_start_is_seeded(model_and_batch):
    model, x, y = model_and_batch
    a = pgd_linf(model, x, y, 8 / 255, 2 / 255, 2, generator=torch.Generator().manual_seed(3))
    b = pgd_linf(model, x, y, 8 / 255, 2 / 255, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_a_given_start_draw_is_the_generators_own(model_and_batch):
    """The random start drawn apart (start_noise, as the CUDA-graphed step takes it) gives the
    attack the generator would have given; a different draw a different attack."""
    model, x, y = model_and_batch
    a = pgd_linf(model, x, y, 8 / 255, 2 / 255, 2, generator=torch.Generator().manual_seed(3))
    b = pgd_linf(model, x, y, 8 / 255, 2 / 255, 2, noise=start_noise(x, torch.Generator().manual_seed(3)))
    c = pgd_linf(model, x, y, 8 / 255, 2 / 255, 2, noise=start_noise(x, torch.Generator().manual_seed(4)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    f = fgsm(model, x, y, 8 / 255, random_start=True, generator=torch.Generator().manual_seed(5))
    g = fgsm(model, x, y, 8 / 255, random_start=True, noise=start_noise(x, torch.Generator().manual_seed(5)))
    assert torch.equal(f, g)


def test_negative_eps_is_one_clear_error(model_and_batch):
    model, x, y = model_and_batch
    with pytest.raises(ValueError, match="eps must be >= 0"):
        pgd_linf(model, x, y, -1 / 255, 2 / 255, 10)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        fgsm(model, x, y, -0.1)


def test_the_papers_255_scale_becomes_the_attacks_unit_scale(model_and_batch):
    """eps 8 as users give it is 8/255 of the [0, 1] images the attacks perturb."""
    model, x, y = model_and_batch
    assert to_unit_scale(8.0) == 8 / 255 and to_unit_scale(0.0) == 0.0
    x_adv = fgsm(model, x, y, to_unit_scale(8.0))
    assert (x_adv - x).abs().max().item() == pytest.approx(8 / 255, abs=1e-6)
