"""Several runs of one network trained as one: K networks' weights stacked along a new first axis
and evaluated by `torch.func.vmap` over a batch of K*B images, whose k-th block of B images is
run k's. Each convolution of the stack is one grouped convolution doing the work of K, so the
step launches as many kernels as one run's does, each K times larger: a way to fill a GPU with the
paper's narrow CIFAR ResNets (16-64 channels), whose step for one run waits on launches and
leaves most of the chip idle (benchmarks/gpu_step_matrix.py measures it, "stacked").

Runs stack where they differ only in their own fields (OWN_FIELDS: eps, attack step, seed, eps
warm-up, spectral clip). Each block is the batch its run draws alone (its seed's data order,
augmentation and random starts), attacked within its own radius (`radius`). SGD acts
elementwise, so one optimizer over the stacked weights is K optimizers; the loss is the sum of
the runs' mean losses, so each run's gradient is its own. A stack therefore computes what its K
runs compute one at a time, to rounding (the grouped kernels add in another order):
`tests/test_stacked.py`.

    runs.train_stacked(configs, runs_dir)       # through the run store: `fit`, per-run checkpoints
    stacked.fit(configs, data, device, networks, optimizers, schedulers, histories)

    stack = StackedNetworks(networks)           # or step by step
    training_step(stack, optimizer, x, y, noise, eps=radius(eps_per_run, B, device), ...)
    stack.unstack_into(networks)                # each run's weights, to evaluate, analyse or save

Networks with batch norm (WRN-50-2) are refused: their running statistics are updated in place.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import attacks, models, train
from .cuda_graphs import GraphedStep
from .device import autocast, prepare_device


class StackedNetworks(nn.Module):
    """K networks of one architecture as one module over K*B images (block k: network k)."""

    def __init__(self, networks: Sequence[nn.Module]):
        super().__init__()
        networks = list(networks)
        if not networks:
            raise ValueError("a stack needs at least one network")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for net in networks for m in net.modules()):
            raise ValueError("networks with batch norm cannot be stacked (their running statistics are updated in "
                             "place): stack the CIFAR ResNets, which have none, or train the runs one at a time")
        params, buffers = stack_module_state(networks)  # raises where the networks' parameters differ in shape
        self.runs = len(networks)
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.weights = nn.ParameterList(nn.Parameter(params[name].detach().clone()) for name in self.param_names)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name].clone())
        self._shape = [copy.deepcopy(networks[0]).to("meta")]  # in a list: the architecture, not a submodule

    def _state(self) -> tuple[dict, dict]:
        return (dict(zip(self.param_names, self.weights)),
                {name: getattr(self, f"buffer_{i}") for i, name in enumerate(self.buffer_names)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K*B, classes) of images (K*B, ...): block k through network k."""
        if len(x) % self.runs:
            raise ValueError(f"a stack of {self.runs} networks takes {self.runs} equal blocks of images, got {len(x)}")

        def one(params, buffers, images):
            return functional_call(self._shape[0], (params, buffers), (images,))

        return vmap(one)(*self._state(), x.unflatten(0, (self.runs, -1))).flatten(0, 1)

    @torch.no_grad()
    def restack_from(self, networks: Sequence[nn.Module]) -> None:
        """Copy `networks[k]`'s weights (and buffers) into the stack's k-th entries (after an
        end-of-epoch hook, such as spectral clipping, changed them)."""
        self._check_count(networks)
        params, buffers = self._state()
        states = [network.state_dict() for network in networks]
        for name, stacked_value in {**params, **buffers}.items():
            stacked_value.copy_(torch.stack([state[name] for state in states]))

    def _check_count(self, networks: Sequence[nn.Module]) -> None:
        if len(networks) != self.runs:
            raise ValueError(f"the stack holds {self.runs} networks, got {len(networks)}")

    @torch.no_grad()
    def unstack_into(self, networks: Sequence[nn.Module]) -> None:
        """Copy network k's weights (and buffers) out of the stack into `networks[k]`."""
        self._check_count(networks)
        params, buffers = self._state()
        for k, network in enumerate(networks):
            network.load_state_dict({name: value[k] for name, value in {**params, **buffers}.items()})


def radius(per_run_255: Sequence[float], batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Each run's attack radius (or step size), given on the paper's 0-255 scale, on the [0, 1]
    scale of the images as one value per image of the stack's K*B, shaped to broadcast over them."""
    if any(value < 0 for value in per_run_255):
        raise ValueError(f"attack radii and steps must be >= 0 on the 0-255 scale, got {list(per_run_255)}")
    values = torch.tensor([attacks.to_unit_scale(float(v)) for v in per_run_255], device=device)
    return values.repeat_interleave(batch).view(-1, 1, 1, 1)


def training_step(stack: StackedNetworks, optimizer, x, y, noise, *, eps: torch.Tensor, step: torch.Tensor,
                  steps: int, precision: str, totals: tuple, cache: bool = True) -> None:
    """`train.training_step` for a stack of runs (appendix B.1): each block of images attacked
    from its random start `noise` within its run's radius `eps` by `steps` steps of `step`
    (`radius`; a radius of 0, or steps=0 and noise None, leaves the images clean: standard
    training), the cross entropy of each network on its block, summed over the runs, and SGD. Adds
    each run's summed loss and correct count to `totals` (two tensors of one entry per run) on the
    device; like the step of one run it can be captured as a CUDA graph (`cuda_graphs.GraphedStep`,
    with cache=False)."""
    with autocast(precision, x.device, cache):
        if steps:
            x = attacks.pgd_linf(stack, x, y, eps, step, steps, random_start=True, noise=noise)
        logits = stack(x)
    losses = F.cross_entropy(logits.float(), y, reduction="none").view(stack.runs, -1)
    correct = (logits.argmax(1) == y).view(stack.runs, -1).sum(1)
    train.descend(optimizer, losses.mean(1).sum(), totals, losses.detach().sum(1), correct)


# --- training runs as one stack (`runs.train_stacked`, `arreg prepare -p stack=K`) ---------------

OWN_FIELDS = ("eps", "attack_step", "seed", "eps_warmup_epochs", "spectral_norm")  # may differ within a stack


def stack_key(config: train.TrainConfig) -> tuple | None:
    """What runs trained as one stack share: every config field but each run's own (OWN_FIELDS:
    its AR strength, attack step, seed, warm-up and spectral clip). None where a run cannot be
    stacked: FGSM (appendix B.6; the stacked step runs PGD), or a network with batch norm."""
    if config.method == "fgsm" or config.arch not in models.CIFAR_ARCHS:
        return None
    return tuple((name, tuple(value) if isinstance(value, list) else value)
                 for name, value in sorted(config.to_dict().items()) if name not in OWN_FIELDS)


def check_stackable(configs: Sequence[train.TrainConfig]) -> None:
    """One clear error where `configs` cannot train as one stack."""
    keys = {stack_key(config) for config in configs}
    if None in keys:
        raise ValueError("FGSM runs and networks with batch norm cannot be stacked: train them one at a time")
    if len(keys) > 1:
        first = dict(next(iter(keys)))
        differ = sorted({name for key in keys for name, value in key if value != first[name]})
        raise ValueError(f"runs trained as one stack may differ only in {', '.join(OWN_FIELDS)}; these differ in "
                         f"{', '.join(differ)}: stack them in separate groups")


def train_epoch(stack: StackedNetworks, optimizer, data, configs: Sequence[train.TrainConfig], epoch: int,
                device: torch.device, channels_last: bool = False, cuda_graphs: bool = False) -> list[dict]:
    """`train.train_epoch` for a stack: run k's block of every step is the batch run k draws alone
    (its seed's order, augmentation and random starts, `train.epoch_batches`) attacked within its
    own radius, so each run trains as it would alone, to rounding. With `cuda_graphs` on a CUDA
    device every full step is one replay of the stack's step captured this epoch. Returns each
    run's history row: `stack_seconds` is the stack's epoch, `seconds` the run's share of it (so
    that a sum over runs is the time spent)."""
    first, device = configs[0], torch.device(device)
    draws = [train.epoch_batches(data, config, epoch, device) for config in configs]
    eps = [train.eps_scale(c, epoch) * c.eps for c in configs]
    steps = [train.eps_scale(c, epoch) * c.attack_step for c in configs]
    totals = (torch.zeros(len(configs), device=device), torch.zeros(len(configs), device=device, dtype=torch.long))
    graphs = cuda_graphs and device.type == "cuda"

    def step_for(batch: int):  # the radii are one value per image: the last batch may be partial
        return functools.partial(training_step, stack, optimizer, eps=radius(eps, batch, device),
                                 step=radius(steps, batch, device), steps=first.attack_steps if first.method == "pgd"
                                 else 0, precision=first.precision, totals=totals, cache=not graphs)

    full = step_for(first.batch_size)
    graphed = GraphedStep(full) if graphs else None
    stack.train()
    start = time.perf_counter()
    for blocks in zip(*(batches for batches, _ in draws)):
        images = [x.contiguous(memory_format=torch.channels_last) if channels_last else x for x, _ in blocks]
        noises = [train.attack_noise(c, x, generator) for c, x, (_, generator) in zip(configs, images, draws)]
        x, y = torch.cat(images), torch.cat([y for _, y in blocks])
        noise = None if noises[0] is None else torch.cat(noises)
        if len(blocks[0][1]) == first.batch_size:
            (graphed or full)(x, y, noise)
        else:
            step_for(len(blocks[0][1]))(x, y, noise)
    seconds, seen = time.perf_counter() - start, len(data.y_train)
    rows = [{"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_input_loss": loss / seen,
             "train_input_acc": 100.0 * correct / seen, "seconds": seconds / len(configs),
             "stack_seconds": seconds, "stacked_runs": len(configs)}
            for loss, correct in zip(totals[0].tolist(), totals[1].tolist())]
    if graphed is not None:
        for row in rows:
            row["cuda_graph"] = graphed.captured
    return rows


def fit(configs: Sequence[train.TrainConfig], data, device, networks: list, optimizers: list, schedulers: list,
        histories: list, *, hooks: Sequence[Sequence] | None = None, saves: Sequence | None = None,
        channels_last: bool = False, cuda_graphs: bool = False) -> tuple[list, list]:
    """`train.fit` for K runs trained as one stack, from the epoch they all reached: each run's
    network, optimizer, scheduler and history (from its checkpoint, or new), and per run its
    end-of-epoch hooks and `save(model, optimizer, scheduler, history)`. After every epoch each run's
    weights and momentum are copied out of the stack into its own network and optimizer, its hooks
    run (a hook that changes the weights, spectral clipping, is copied back in) and it is saved: a
    run's checkpoint is that of a run trained alone, so it resumes alone or in any stack.
    Returns (networks, histories)."""
    check_stackable(configs)
    if len({len(history) for history in histories}) > 1:
        raise ValueError(f"runs trained as one stack start from one epoch, got {[len(h) for h in histories]}: "
                         f"train them in separate stacks")
    k = len(configs)
    hooks, saves = hooks or [()] * k, saves or [None] * k
    if not len(networks) == len(optimizers) == len(schedulers) == len(histories) == len(hooks) == len(saves) == k:
        raise ValueError(f"one network, optimizer, scheduler, history, hook list and save per config ({k})")
    device = prepare_device(device)
    data = data.to(device)
    for network in networks:  # in place: the optimizers keep their parameters
        network.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    stack = StackedNetworks(networks)
    optimizer, scheduler = train.build_optimizer(configs[0], stack)
    _load_optimizer(optimizer, scheduler, stack, optimizers, schedulers)
    for epoch in range(len(histories[0]), configs[0].epochs):
        rows = train_epoch(stack, optimizer, data, configs, epoch, device, channels_last, cuda_graphs)
        scheduler.step()
        stack.unstack_into(networks)
        _unstack_optimizer(optimizer, scheduler, stack, optimizers, schedulers)
        for network, row, run_hooks in zip(networks, rows, hooks):
            for hook in run_hooks:
                row.update(hook(network, epoch) or {})
        if any(hooks):
            stack.restack_from(networks)
        errors = []
        for network, opt, sched, history, row, save in zip(networks, optimizers, schedulers, histories, rows, saves):
            history.append(row)
            if save is None:
                continue
            try:  # every run keeps its epoch before one run's error (a diverged loss) stops the stack
                save(network, opt, sched, history)
            except Exception as err:
                errors.append(err)
        if errors:
            raise errors[0]
    return networks, histories


def _run_params(optimizers: list) -> list[list]:
    return [[p for group in opt.param_groups for p in group["params"]] for opt in optimizers]


def _load_optimizer(optimizer, scheduler, stack: StackedNetworks, optimizers: list, schedulers: list) -> None:
    """The stack's SGD state (momentum) and schedule from the runs' own (all at one epoch)."""
    scheduler.load_state_dict(schedulers[0].state_dict())
    for group in optimizer.param_groups:
        group["lr"] = optimizers[0].param_groups[0]["lr"]
    for i, weight in enumerate(stack.weights):
        states = [opt.state.get(params[i], {}) for opt, params in zip(optimizers, _run_params(optimizers))]
        if any(states) and not all(states):
            raise ValueError("some runs of the stack have SGD momentum and others none: they did not stop at the "
                             "same epoch; train them in separate stacks")
        if all(states):
            optimizer.state[weight] = {key: torch.stack([state[key] for state in states])
                                       if torch.is_tensor(states[0][key]) else states[0][key] for key in states[0]}


def _unstack_optimizer(optimizer, scheduler, stack: StackedNetworks, optimizers: list, schedulers: list) -> None:
    """Each run's SGD state (momentum) and schedule from the stack's."""
    for k, (opt, sched, params) in enumerate(zip(optimizers, schedulers, _run_params(optimizers))):
        sched.load_state_dict(scheduler.state_dict())
        for group in opt.param_groups:
            group["lr"] = optimizer.param_groups[0]["lr"]
        for weight, param in zip(stack.weights, params):
            opt.state[param] = {key: value[k].clone() if torch.is_tensor(value) else value
                                for key, value in optimizer.state.get(weight, {}).items()}
