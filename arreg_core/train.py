"""Adversarial training (appendix B.1, B.6, D.2, D.3).

A network of a given AR strength eps (on the paper's 0-255 scale) is trained on adversarial
examples of its training images: l-inf PGD with a random start, 10 steps of 2/255 (or FGSM
for appendix B.6); eps = 0 is standard training. SGD with momentum, a multistep learning-rate
schedule, and an end-of-epoch hook where spectral clipping (appendix B.4.2) plugs in.

All randomness of an epoch (shuffling, augmentation, attack starts) is drawn from generators
seeded by (seed, epoch), so a run resumed from an epoch's checkpoint continues bit for bit as
the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import types
import typing
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import attacks, data as data_module, models
from .cuda_graphs import GraphedStep
from .device import autocast, epoch_generator, prepare_device, resolve_precision

METHODS = ("none", "pgd", "fgsm")
DEFAULT_MILESTONES = (100, 150)  # appendix B.1: the learning rate falls tenfold at epochs 100 and 150 of 200
PRECISIONS = ("fp32", "bf16")


def milestones_reached(milestones, epochs: int) -> list:
    """The milestones a run of `epochs` epochs reaches: one at or after the last epoch never
    changes the learning rate of a trained epoch, and is dropped. Entries that are not integers
    are kept, for TrainConfig to refuse."""
    return [m for m in milestones if not isinstance(m, int) or m < epochs]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained network; its hash keys the run store.

    Defaults are the paper's CIFAR settings (appendix B.1, D.3). Weight decay is not stated in
    the paper: we use 5e-4, the usual value for CIFAR ResNets, and keep it a parameter.
    """

    dataset: str = "cifar10"
    arch: str = "resnet56"
    width: int = 1
    n_train: int | None = None  # class-balanced subset sizes (None: the whole split)
    n_test: int | None = None
    subset_seed: int = 0
    method: str = "pgd"  # none | pgd | fgsm
    eps: float = 8.0  # AR strength, 0-255 scale; 0 means standard training
    attack_steps: int = 10
    attack_step: float = 2.0  # 0-255 scale
    eps_warmup_epochs: int = 0  # ramp eps (and the attack step) linearly up over these first epochs; 0: the paper's constant eps
    fgsm_random_start: bool = False
    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = DEFAULT_MILESTONES
    lr_gamma: float = 0.1
    augment: bool = True
    spectral_norm: float | None = None  # clip every layer's spectral norm to this each epoch
    seed: int = 0
    precision: str = "fp32"  # fp32 (the paper's) | bf16: autocast for the forward passes of training and attack

    def __post_init__(self):
        """Refuse, in one line naming the valid range, any value that cannot train as the paper
        means it; integral floats of integer fields (epochs=2.0, from JSON) become ints."""
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked_type(f.name, getattr(self, f.name), _field_types()[f.name]))
        if not (math.isfinite(self.eps) and 0 <= self.eps <= 255):
            raise ValueError(f"eps must be >= 0 on the 0-255 scale (e.g. 4, 8, 16) and at most 255, got {self.eps}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.method == "none" and self.eps > 0:
            raise ValueError("method 'none' trains on clean images: set eps=0, or choose method pgd or fgsm")
        if self.eps == 0 and self.method != "none":
            object.__setattr__(self, "method", "none")  # one canonical spelling of standard training
        if self.dataset not in data_module.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(data_module.DATASETS)}")
        if self.arch not in models.ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(models.ARCHS)}")
        for name in ("epochs", "batch_size", "width", "attack_steps", "n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "attack_steps" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not 0 <= self.eps_warmup_epochs <= self.epochs:
            raise ValueError(f"eps_warmup_epochs must be in 0..epochs ({self.epochs}), got {self.eps_warmup_epochs}")
        for name in ("seed", "subset_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)}")
        if self.method == "pgd" and self.attack_steps < 1:
            raise ValueError(f"method pgd needs attack_steps >= 1 (the paper: 10), got {self.attack_steps}")
        if self.method == "pgd" and not (math.isfinite(self.attack_step) and self.attack_step > 0):
            raise ValueError(f"method pgd needs attack_step > 0 on the 0-255 scale (the paper: 2), got {self.attack_step}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0 (the paper: 0.05), got {self.lr}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1) (the paper: 0.9), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay}")
        if not (math.isfinite(self.lr_gamma) and 0 < self.lr_gamma <= 1):
            raise ValueError(f"lr_gamma must be in (0, 1] (the paper: 0.1), got {self.lr_gamma}")
        milestones = tuple(self.milestones)
        if milestones == DEFAULT_MILESTONES:  # the paper's schedule, for a run shorter than the paper's
            milestones = tuple(milestones_reached(milestones, self.epochs))
        if any(not 1 <= m < self.epochs for m in milestones) or list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be sorted epochs in 1..{self.epochs - 1} (epochs - 1), "
                             f"got {list(milestones)}")
        if self.spectral_norm is not None and not (math.isfinite(self.spectral_norm) and self.spectral_norm > 0):
            raise ValueError(f"spectral_norm must be > 0 (or None for no clipping), got {self.spectral_norm}")
        if self.precision not in PRECISIONS:
            hint = " ('auto' is resolved by arreg_core.device.resolve_precision before a config is made)" \
                if self.precision == "auto" else ""
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}{hint}")
        object.__setattr__(self, "milestones", milestones)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_fields(cls, fields: dict) -> "TrainConfig":
        """A TrainConfig from a profile's fields (profiles.yaml: its `defaults`, a grid point and a
        notebook's parameters): `attack_step: auto` becomes 2.5 * eps / attack_steps (Madry et al.,
        2018), `precision: auto` bf16 where this machine computes it natively, else fp32; milestones
        at or after the last epoch (an `epochs` parameter below them) are dropped, as they never
        change the learning rate of a trained epoch, and an eps warm-up longer than the run is cut
        to the run."""
        fields = dict(fields)
        if "precision" in fields:
            fields["precision"] = resolve_precision(fields["precision"])
        if fields.get("attack_step") == "auto":
            steps = fields.get("attack_steps", cls.attack_steps)
            eps = fields.get("eps", cls.eps)
            fields["attack_step"] = round(2.5 * eps / steps, 4) if eps else cls.attack_step
        epochs = fields.get("epochs", cls.epochs)
        if isinstance(epochs, int) and "milestones" in fields:  # `-p epochs=1`: drop the milestones never reached
            fields["milestones"] = milestones_reached(fields["milestones"], epochs)
        if isinstance(epochs, int) and isinstance(fields.get("eps_warmup_epochs"), int):  # and warm up for at most all
            fields["eps_warmup_epochs"] = min(fields["eps_warmup_epochs"], epochs)
        return cls.from_dict(fields)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}; valid fields: {', '.join(sorted(names))}")
        return cls(**d)


@functools.cache
def _field_types() -> dict:
    return typing.get_type_hints(TrainConfig)


def _checked_type(name: str, value, hint):
    """`value` if it has the field's type (ints for int fields, real numbers for float fields,
    JSON true/false for bools); an integral float of an int field becomes an int. Else ValueError."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return None if value is None else _checked_type(name, value, args[0])
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list of integers, got {value!r}")
        return tuple(_checked_type(name, v, args[0]) for v in value)
    quoted = " (a string: write it without quotes)" if isinstance(value, str) else ""
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}{quoted}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}{quoted}")
    elif hint is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def build_model_for(config: TrainConfig, data: data_module.ImageData) -> torch.nn.Module:
    torch.manual_seed(config.seed)  # initialisation is the one use of the global generator
    return models.build_model(config.arch, data.num_classes, config.width, dataset=config.dataset)


def build_optimizer(config: TrainConfig, model: torch.nn.Module):
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config.milestones), gamma=config.lr_gamma)
    return opt, sched


def eps_scale(config: TrainConfig, epoch: int) -> float:
    """The fraction of eps trained at in `epoch` (0-based): (epoch + 1) / eps_warmup_epochs during
    the warm-up, 1 after it. A curriculum on the AR strength (Cai et al., 2018, "Curriculum
    adversarial training"), a lever for small networks that stay near chance at a constant eps 16
    (benchmarks/results/cpu_regime_frontier.jsonl); the paper trains at constant eps (0)."""
    if epoch >= config.eps_warmup_epochs:
        return 1.0
    return (epoch + 1) / config.eps_warmup_epochs


def training_inputs(model, x, y, config: TrainConfig, generator: torch.Generator | None,
                    scale: float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The images the network is trained on: adversarial ones for PGD/FGSM (appendix B.1, B.6),
    generated with the model in eval mode; clean ones for standard training. `scale` multiplies
    eps and the attack step (the warm-up, `eps_scale`). The random start is drawn from `generator`,
    or is `noise` where given (`attack_noise`)."""
    if config.method == "none":
        return x
    was_training = model.training
    model.eval()
    eps, step = attacks.to_unit_scale(scale * config.eps), attacks.to_unit_scale(scale * config.attack_step)
    if config.method == "pgd":
        x_adv = attacks.pgd_linf(model, x, y, eps, step, config.attack_steps, random_start=True, generator=generator,
                                 noise=noise)
    else:
        x_adv = attacks.fgsm(model, x, y, eps, random_start=config.fgsm_random_start, generator=generator, noise=noise)
    model.train(was_training)
    return x_adv


def attack_noise(config: TrainConfig, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
    """The draw the training attack's random start consumes for batch `x` (None: no random start)."""
    if config.method == "pgd" or (config.method == "fgsm" and config.fgsm_random_start):
        return attacks.start_noise(x, generator)
    return None


def training_step(model, optimizer, x, y, noise, *, config: TrainConfig, scale: float, totals: tuple,
                  cache: bool = True) -> None:
    """One step of adversarial training (appendix B.1): the attack from the random start `noise`,
    the cross entropy of the network on its result, SGD. Adds the batch's summed loss and correct
    count to `totals` on the device (the step never waits for the host); writes nothing else that
    outlives it, so it can be captured as a CUDA graph (`cuda_graphs.GraphedStep`, with cache=False)."""
    with autocast(config.precision, x.device, cache):
        x = training_inputs(model, x, y, config, None, scale, noise)
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    descend(optimizer, loss, totals, loss.detach() * len(y), (logits.argmax(1) == y).sum())


def descend(optimizer, loss: torch.Tensor, totals: tuple, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
    """The end of a training step, one run's (`training_step`) or a stack's (`stacked.training_step`):
    SGD on `loss`, then the summed loss and correct count added to `totals` on the device."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    totals[0].add_(loss_sum)
    totals[1].add_(correct)


def epoch_batches(data: data_module.ImageData, config: TrainConfig, epoch: int, device: torch.device):
    """The epoch's training batches (shuffled and augmented) and the generator of its attack's
    random starts, both seeded by (seed, epoch): a resumed run draws what an uninterrupted one does."""
    data_gen = epoch_generator(config.seed, epoch, device, stream=0)
    attack_gen = epoch_generator(config.seed, epoch, device, stream=1)
    augment = data.augment if config.augment else "none"
    batches = data_module.iterate_batches(data.x_train, data.y_train, config.batch_size, shuffle=True,
                                          augment=augment, generator=data_gen, device=device)
    return batches, attack_gen


def train_epoch(model, optimizer, data: data_module.ImageData, config: TrainConfig, epoch: int,
                device: torch.device, channels_last: bool = False, progress: bool = True,
                cuda_graphs: bool = False) -> dict:
    """One pass over the training set; returns the epoch's mean loss/accuracy on the inputs
    the network was trained on (adversarial ones under AR). `model` may be a torch.compile
    wrapper of the optimizer's network. With `cuda_graphs` on a CUDA device, every full batch
    runs as one replay of the step captured this epoch (`cuda_graphs.GraphedStep`), the last,
    partial one eagerly; elsewhere the option changes nothing."""
    batches, attack_gen = epoch_batches(data, config, epoch, device)
    n_batches = -(-len(data.y_train) // config.batch_size)
    model.train()
    totals = (torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))
    graphs = cuda_graphs and device.type == "cuda"
    step = functools.partial(training_step, model, optimizer, config=config, scale=eps_scale(config, epoch),
                             totals=totals, cache=not graphs)
    graphed = GraphedStep(step) if graphs else None
    start = time.perf_counter()
    for x, y in tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}/{config.epochs}",
                     leave=False, disable=not progress):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        noise = attack_noise(config, x, attack_gen)
        (graphed if graphed is not None and len(y) == config.batch_size else step)(x, y, noise)
    seen = len(data.y_train)
    row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_input_loss": totals[0].item() / seen,
           "train_input_acc": 100.0 * totals[1].item() / seen, "seconds": time.perf_counter() - start}
    if graphed is not None:
        row["cuda_graph"] = graphed.captured
    return row


EpochHook = Callable[[torch.nn.Module, int], dict | None]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_mode(compile: bool | str) -> str | None:
    """torch.compile's mode for the execution option `compile`: None for False (no compile),
    "default" for True, else one of COMPILE_MODES; anything else is one clear error."""
    if compile is False:
        return None
    mode = "default" if compile is True else compile
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile {compile!r}; valid: true, false, {', '.join(COMPILE_MODES)}")
    return mode


def compiled(model: torch.nn.Module, compile: bool | str = False) -> torch.nn.Module:
    """`model` wrapped by torch.compile for the training step: False (none), True or "default",
    "reduce-overhead" (CUDA graphs of the compiled passes: for small networks whose GPU step is
    bound by kernel launches, not arithmetic) or "max-autotune"."""
    if not compile:
        return model
    return torch.compile(model, mode=compile_mode(compile))


def fit(config: TrainConfig, data: data_module.ImageData, device="auto", *, model=None, optimizer=None,
        scheduler=None, start_epoch: int = 0, history: list | None = None,
        on_epoch_end: list[EpochHook] = (), save_checkpoint=None, channels_last: bool = False,
        compile: bool | str = False, cuda_graphs: bool = False, progress: bool = True):
    """Train from `start_epoch` to `config.epochs`. Pass model/optimizer/scheduler/history from
    a checkpoint to resume. After each epoch the hooks run in order with (model, epoch) and a dict
    they return is merged into that epoch's history row; then
    `save_checkpoint(model, optimizer, scheduler, history)` runs. Returns (model, history).

    `channels_last`, `compile` (torch.compile of the forward passes, `compiled`) and `cuda_graphs`
    (the whole step as one CUDA graph, `cuda_graphs.GraphedStep`; CUDA only) are execution options,
    not part of the config: they may change the arithmetic's order, so results agree with the plain
    run to rounding, not bit for bit; a run resumed with the same options is exact.
    benchmarks/pgd_at_throughput.py and benchmarks/gpu_step_matrix.py measure what each buys."""
    if cuda_graphs and compile:
        raise ValueError("cuda_graphs and compile both capture the step: choose one (cuda_graphs captures all of it)")
    device = prepare_device(device)
    data = data.to(device)
    if model is None:
        model = build_model_for(config, data)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if optimizer is None:
        optimizer, scheduler = build_optimizer(config, model)
    history = list(history or [])
    step_model = compiled(model, compile)
    for epoch in range(start_epoch, config.epochs):
        row = train_epoch(step_model, optimizer, data, config, epoch, device, channels_last, progress, cuda_graphs)
        scheduler.step()
        for hook in on_epoch_end:
            row.update(hook(model, epoch) or {})
        history.append(row)
        if save_checkpoint is not None:
            save_checkpoint(model, optimizer, scheduler, history)
    return model, history
