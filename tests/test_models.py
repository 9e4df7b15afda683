import math

import pytest
import torch
from torch import nn

from arreg_core.models import ARCHS, CIFAR_ARCHS, build_model, weight_layers


@pytest.mark.parametrize("arch", CIFAR_ARCHS)
def test_cifar_resnet_layer_count_and_fixup_init(arch):
    depth = int(arch.removeprefix("resnet"))
    model = build_model(arch, num_classes=10)
    layers = weight_layers(model, 32)
    convs = [l for l in layers if isinstance(l.module, nn.Conv2d)]
    linears = [l for l in layers if isinstance(l.module, nn.Linear)]
    # parameter-free shortcuts: depth = convs + 1 linear (ResNet-56: 55 + 1, Fig. 1a)
    assert len(convs) == depth - 1 and len(linears) == 1 and len(layers) == depth
    assert layers[-1].module is model.fc
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(c.module.bias is None for c in convs)
    # Fixup: classifier and each residual branch's last conv start at zero
    assert torch.count_nonzero(model.fc.weight) == 0 and torch.count_nonzero(model.fc.bias) == 0
    num_branches = len(model.blocks)
    for block in model.blocks:
        assert torch.count_nonzero(block.conv2.weight) == 0
        w = block.conv1.weight
        expected = math.sqrt(2.0 / (w.shape[0] * 9)) / math.sqrt(num_branches)
        assert w.std().item() == pytest.approx(expected, rel=0.15)
    # input sizes seen by the convs: 32 -> 16 -> 8
    assert {l.input_hw for l in convs} == {(32, 32), (16, 16), (8, 8)}
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_width_multiplier_and_classes():
    model = build_model("resnet20", num_classes=100, width=2)
    assert model.conv1.out_channels == 32 and model.fc.out_features == 100
    assert model.fc.in_features == 128


def test_fixup_network_learns_through_zero_init():
    """With zero-initialised branches and classifier, gradients must still reach every layer after a few steps."""
    torch.manual_seed(0)
    model = build_model("resnet8", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    for _ in range(3):  # step 1 moves the classifier, 2 the last convs, 3 reaches all
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_wrn50_2_tinyimagenet_shape():
    model = build_model("wrn50_2", num_classes=200)
    layers = weight_layers(model, 56)
    assert len(layers) == 1 + 3 * (3 + 4 + 6 + 3) + 4 + 1  # stem + 3 convs a unit + 4 downsample convs + fc
    assert layers[0].module.kernel_size == (3, 3) and layers[0].module.stride == (1, 1)
    assert layers[0].input_hw == (56, 56)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert layers[1].module.out_channels == 128  # bottleneck width 64 * k, k = 2


@pytest.mark.parametrize("arch", ["resnet57", "vgg16", "resnet"])
def test_unknown_architecture_is_one_clear_error(arch):
    with pytest.raises(ValueError, match="choose one of"):
        build_model(arch, 10)


def test_models_normalise_inside():
    model = build_model("resnet20", 10, dataset="cifar10-jpeg")
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor([0.4913, 0.4821, 0.4465]))
    assert set(ARCHS) >= set(CIFAR_ARCHS)
