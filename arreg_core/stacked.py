"""Several runs of one network trained as one: K networks' weights stacked along a new first axis
and evaluated by `torch.func.vmap` over a batch of K*B images, whose k-th block of B images is
run k's. Each convolution of the stack is one grouped convolution doing the work of K, so the
step launches as many kernels as one run's does, each K times larger: a way to fill a GPU with the
paper's narrow CIFAR ResNets (16-64 channels), whose step for one run waits on launches and
leaves most of the chip idle (benchmarks/gpu_step_matrix.py measures it, "stacked").

The runs of one AR sweep and seed (appendix B.1) share their data order, augmentation and
random-start draws, and differ only in eps: such a stack trains on the same batch repeated K
times, each block attacked within its own run's radius (`radius`). SGD acts elementwise, so one
optimizer over the stacked weights is K optimizers; the loss is the sum of the runs' mean
losses, so each run's gradient is its own. A stack therefore computes what its K runs compute
one at a time, to rounding (the grouped kernels add in another order): `tests/test_stacked.py`.

    stack = StackedNetworks([build_model(...) for each run])
    optimizer = torch.optim.SGD(stack.parameters(), ...)
    training_step(stack, optimizer, x.repeat(K, 1, 1, 1), y.repeat(K), noise.repeat(K, 1, 1, 1),
                  eps=radius(eps_per_run, B, device), step=radius(step_per_run, B, device), ...)
    stack.unstack_into(networks)   # each run's weights, to evaluate, analyse or checkpoint

Networks with batch norm (WRN-50-2) are refused: their running statistics are updated in place.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import attacks
from .device import autocast


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
    def unstack_into(self, networks: Sequence[nn.Module]) -> None:
        """Copy network k's weights (and buffers) out of the stack into `networks[k]`."""
        if len(networks) != self.runs:
            raise ValueError(f"the stack holds {self.runs} networks, got {len(networks)} to fill")
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
    """`train.training_step` for a stack of PGD runs (appendix B.1): each block of images attacked
    from its random start `noise` within its run's radius `eps` by `steps` steps of `step`
    (`radius`; a radius of 0 leaves the images clean: standard training), the cross entropy of each
    network on its block, summed over the runs, and SGD. Adds the summed loss and correct count of
    all runs to `totals` on the device; like the step of one run it can be captured as a CUDA graph
    (`cuda_graphs.GraphedStep`, with cache=False)."""
    with autocast(precision, x.device, cache):
        x = attacks.pgd_linf(stack, x, y, eps, step, steps, random_start=True, noise=noise)
        logits = stack(x)
    loss = F.cross_entropy(logits.float(), y) * stack.runs  # the sum of the runs' means
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    totals[0].add_(loss.detach() * (len(y) // stack.runs))
    totals[1].add_((logits.argmax(1) == y).sum())
