"""A stack of runs (arreg_core.stacked) computes what its runs compute one at a time: the same
logits, and after training steps the same weights, to rounding; eps 0 in a stack is standard
training; bad stacks are refused with one clear error."""
import functools

import pytest
import torch

from arreg_core import stacked
from arreg_core.cuda_graphs import GraphedStep
from arreg_core.models import build_model
from arreg_core.train import TrainConfig, attack_noise, build_optimizer, training_step

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]


def networks(k: int, arch: str = "resnet8", device: str = "cpu"):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        net = build_model(arch, 10, dataset="synthetic")
        with torch.no_grad():  # Fixup zeroes the last layers: perturb them so every weight matters
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        out.append(net.to(device))
    return out


def test_a_stack_gives_each_network_its_own_logits():
    nets = networks(3)
    x = torch.rand(3 * 5, 3, 32, 32)
    logits = stacked.StackedNetworks(nets)(x)
    expected = torch.cat([net(block) for net, block in zip(nets, x.chunk(3))])
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def sweep(precision: str, batch: int, device: str, eps=(0.0, 4.0, 8.0), steps: int = 2):
    """The configs of one AR sweep and seed, and its batches and random-start draws (shared by its runs)."""
    configs = [TrainConfig(dataset="synthetic", arch="resnet8", method="pgd" if e else "none", eps=e, attack_steps=3,
                           attack_step=2.0, batch_size=batch, epochs=2, milestones=(), precision=precision)
               for e in eps]
    generator = torch.Generator(device).manual_seed(0)
    batches = [(torch.rand(batch, 3, 32, 32, generator=generator, device=device),
                torch.randint(0, 10, (batch,), generator=generator, device=device)) for _ in range(steps)]
    return configs, batches, [attack_noise(configs[1], x, generator) for x, _ in batches]


def stack_trainer(configs, batch: int, device: str, cache: bool = True):
    """A stack of the sweep's networks, its optimizer and its step over one batch of the sweep."""
    nets = networks(len(configs), device=device)
    stack = stacked.StackedNetworks(nets)
    optimizer, _ = build_optimizer(configs[0], stack)
    totals = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
    step = functools.partial(stacked.training_step, stack, optimizer, totals=totals, steps=configs[1].attack_steps,
                             precision=configs[0].precision, cache=cache,
                             eps=stacked.radius([c.eps for c in configs], batch, device),
                             step=stacked.radius([c.attack_step for c in configs], batch, device))
    k = len(configs)
    return nets, stack, totals, lambda x, y, noise: step(x.repeat(k, 1, 1, 1), y.repeat(k), noise.repeat(k, 1, 1, 1))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_training_a_stack_is_training_each_run_alone(device, precision):
    """Three runs of one AR sweep and seed (eps 0, 4 and 8: same batches and random-start draws),
    two steps: the stack's weights, unstacked, are each run's own (bf16: to its rounding)."""
    batch = 8
    configs, batches, noises = sweep(precision, batch, device)
    alone = networks(3, device=device)
    for net, config in zip(alone, configs):
        optimizer, _ = build_optimizer(config, net)
        totals = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
        step = functools.partial(training_step, net, optimizer, config=config, scale=1.0, totals=totals)
        for (x, y), noise in zip(batches, noises):
            step(x, y, noise if config.method == "pgd" else None)

    together, stack, totals, step = stack_trainer(configs, batch, device)
    for (x, y), noise in zip(batches, noises):
        step(x, y, noise)
    stack.unstack_into(together)
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if precision == "fp32" else {"rtol": 0.05, "atol": 2e-3}
    for a, b in zip(alone, together):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, **tolerance, msg=lambda m: f"{name}: {m}")
    assert int(totals[1]) <= 2 * 3 * batch and float(totals[0]) > 0


def test_a_stack_holds_its_networks_weights_and_refuses_what_it_cannot_hold():
    nets = networks(2)
    stack = stacked.StackedNetworks(nets)
    assert sum(p.numel() for p in stack.parameters()) == 2 * sum(p.numel() for p in nets[0].parameters())
    with pytest.raises(ValueError, match="2 equal blocks"):
        stack(torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="batch norm cannot be stacked"):
        stacked.StackedNetworks([torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))] * 2)
    with pytest.raises(ValueError, match="holds 2 networks"):
        stack.unstack_into(nets[:1])
    with pytest.raises(ValueError, match=">= 0 on the 0-255 scale"):
        stacked.radius([4, -1], 8)
    assert stacked.radius([0, 255], 2).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 2e-2)])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_a_graphed_stack_trains_like_the_eager_stack(device, precision, rel):
    """The stack's step captured as one CUDA graph (cuda_graphs.GraphedStep) and replayed trains
    like the eager stack: the same weights to the precision's rounding, and the graph was replayed."""
    batch = 16
    configs, batches, noises = sweep(precision, batch, device, steps=5)
    eager_nets, eager_stack, _, eager_step = stack_trainer(configs, batch, device)
    graph_nets, graph_stack, _, graph_step = stack_trainer(configs, batch, device, cache=False)
    graphed = GraphedStep(graph_step)
    for (x, y), noise in zip(batches, noises):
        eager_step(x, y, noise)
        graphed(x, y, noise)
    assert graphed.captured
    for a, b in zip(eager_stack.parameters(), graph_stack.parameters()):
        scale = a.abs().max().clamp_min(1e-3)
        assert ((a - b).abs().max() / scale).item() <= rel
