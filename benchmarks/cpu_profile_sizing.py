"""Size the book's `cpu` profile: train one candidate setting on cifar10-jpeg and report its
wall time and whether it reaches the paper's regime (the network fits its training set, >= 95%
training accuracy at the lowest AR strength, with a clear train-test gap).

Run several candidates side by side, one torch thread each (on 2 cores, two 1-thread runs
train more images per second than one 2-thread run for these small networks):

    python benchmarks/cpu_profile_sizing.py --arch resnet8 --n-train 1000 --epochs 60 --eps 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from arreg_core.device import resolve_precision
from arreg_core.runs import get_or_train
from arreg_core.train import TrainConfig

try:
    from common import cpu_model
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import cpu_model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet8")
    p.add_argument("--width", type=int, default=1)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--eps", type=float, default=4)
    p.add_argument("--method", default="pgd")
    p.add_argument("--attack-steps", type=int, default=3)
    p.add_argument("--attack-step-factor", type=float, default=2.5,
                   help="attack step = factor * eps / attack steps (Madry et al.'s rule: 2.5)")
    p.add_argument("--attack-step", type=float, default=None,
                   help="attack step on the 0-255 scale, the same at every eps (overrides --attack-step-factor); "
                        "20/3 keeps the paper's total step length of 10 x 2/255 with 3 steps")
    p.add_argument("--milestones", type=int, nargs="*", default=None,
                   help="learning-rate drop epochs (default: at 1/2 and 3/4 of the epochs)")
    p.add_argument("--eps-warmup-epochs", type=int, default=0, help="TrainConfig.eps_warmup_epochs")
    p.add_argument("--augment", type=int, default=0)
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 | auto")
    p.add_argument("--channels-last", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs-dir", default="/tmp/arreg-sizing")
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    step = a.attack_step_factor * a.eps / a.attack_steps if a.eps else 2.0  # Madry et al.: factor 2.5
    if a.attack_step is not None:
        step = a.attack_step
    config = TrainConfig(dataset="cifar10-jpeg", arch=a.arch, width=a.width, n_train=a.n_train, n_test=a.n_test,
                         method=a.method if a.eps else "none", eps=a.eps, attack_steps=a.attack_steps,
                         attack_step=round(step, 4), eps_warmup_epochs=a.eps_warmup_epochs, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         weight_decay=a.weight_decay, milestones=tuple(a.milestones) if a.milestones is not None else (a.epochs // 2, 3 * a.epochs // 4),
                         augment=bool(a.augment), precision=resolve_precision(a.precision, "cpu"))
    start = time.perf_counter()
    run = get_or_train(config, a.runs_dir, device="cpu", data_root=a.data_root, channels_last=bool(a.channels_last),
                       progress=False)
    result = {"config": config.to_dict(), "threads": a.threads, "channels_last": bool(a.channels_last),
              "cpu_model": cpu_model(), "load_average_at_end": os.getloadavg()[0],
              "wall_s": time.perf_counter() - start,
              **{k: round(v, 4) for k, v in run.metrics.items()},
              "train_input_acc_by_epoch": [round(r["train_input_acc"], 1) for r in run.history]}
    print(json.dumps(result))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
