"""The whole adversarial-training step as one CUDA graph: the attack's steps, the training
forward/backward and the optimizer update (appendix B.1's step, `train.training_step`).

The paper's CIFAR networks are narrow (16-64 channels): on a GPU their eager step waits on
thousands of kernel launches (PGD-10 runs 11 forward/backward passes a step), not on
arithmetic. Captured once per epoch and replayed for every full batch, the step launches once.

    step = GraphedStep(functools.partial(training_step, model, optimizer, ...))
    for x, y, noise in batches:   # full batches of one shape; the random start drawn outside
        step(x, y, noise)

The first `warmup` calls run eagerly on a side stream (PyTorch's recipe for whole-network
capture: optimizer state and library handles exist before capture), the next one captures and
every call replays; the same kernels as the eager step run in the same order, so an epoch
computes what the eager epoch computes. A capture that fails says so once and the step stays
eager. The learning rate is baked into the captured update: capture anew for each epoch.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

WARMUP_STEPS = 2


class GraphedStep:
    """`step(x, y, noise)` (a training step that writes only into tensors that outlive it) run
    eagerly `warmup` times on a side stream, then captured and replayed."""

    def __init__(self, step: Callable, warmup: int = WARMUP_STEPS):
        self.step, self.warmup = step, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple | None = None
        self.failed = False
        self.side = torch.cuda.Stream()

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor | None) -> None:
        if self.failed:
            return self.step(x, y, noise)
        if self.graph is None and self.warmup > 0:
            self.warmup -= 1
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.step(x, y, noise)
            torch.cuda.current_stream().wait_stream(self.side)
            return None
        if self.graph is None and not self._capture(x, y, noise):
            return self.step(x, y, noise)
        for static, value in zip(self.inputs, (x, y, noise)):
            if static is not None:
                static.copy_(value)
        self.graph.replay()
        return None

    def _capture(self, x, y, noise) -> bool:
        """Record the step on static copies of the inputs (nothing runs while recording)."""
        self.inputs = tuple(None if t is None else t.clone() for t in (x, y, noise))  # keeps channels_last
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step(*self.inputs)
        except RuntimeError as err:  # an op that cannot be captured: train on, eagerly
            warnings.warn(f"CUDA graph capture of the training step failed ({' '.join(str(err).split())[:200]}); "
                          f"training continues with the eager step", RuntimeWarning, stacklevel=3)
            self.failed, self.inputs = True, None
            torch.cuda.synchronize()
            return False
        self.graph = graph
        return True
