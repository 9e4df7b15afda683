"""Images per second of PGD-10 adversarial training on one GPU, per run and per GPU: the eager
step against the whole step captured as one CUDA graph (arreg_core.cuda_graphs), fp32 against
bf16 autocast, and 1, 2, 4 or 8 runs sharing the GPU, beside the plain loop a user would write
(benchmarks/pgd_at_throughput.py's: DataLoader + torchvision + torchattacks, fp32).

Every cell trains for real: the project's on-device batches (pad-4 crop + flip of the data set's
images), the paper's attack (l-inf eps 8/255, 10 steps of 2/255, random start), SGD. Runs that
share the GPU are either separate processes (what `arreg prepare --workers N` does on one GPU)
or threads of one process, each replaying its own graph on its own CUDA stream ("streams"), or
one network of the runs' stacked weights over their batches put end to end ("stacked",
arreg_core.stacked: one grouped kernel where each run launched its own). A
cell times `--seconds` of steady state after its warm-up (and capture); the runs of a shared
cell start together and the per-GPU rate is all their images over the span from the first
start to the last end. Single-run cells are timed `--repeats` times, interleaved, and give the
median. Channels-last memory format throughout (the project's fast path).

    python benchmarks/gpu_step_matrix.py --json OUT/gpu_step_matrix_h200.json  # gpu_session.sh's step 3
    python benchmarks/gpu_step_matrix.py --device cpu --archs resnet8 --images 64 --batch-size 16 \
        --runs 1 2 --seconds 0.2 --repeats 1   # the CPU-side check of the script (tests)
    python benchmarks/gpu_step_matrix.py --archs resnet56 --runs 4 8 --sharing stacked  # one way of sharing
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import threading
import time
import traceback
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import torch

from arreg_core import stacked
from arreg_core.cuda_graphs import GraphedStep
from arreg_core.data import iterate_batches
from arreg_core.device import epoch_generator, prepare_device
from arreg_core.train import TrainConfig, attack_noise, training_step

try:
    from common import machine_info
    from pgd_at_throughput import PILImages, initial_model, plain_epoch, synchronize, training_data
except ImportError:  # imported as a module from elsewhere (tests)
    from benchmarks.common import machine_info
    from benchmarks.pgd_at_throughput import PILImages, initial_model, plain_epoch, synchronize, training_data


SHARING = ("processes", "streams", "stacked")


def config_of(arch: str, precision: str, batch_size: int, dataset: str) -> TrainConfig:
    return TrainConfig(dataset=dataset, arch=arch, method="pgd", eps=8.0, attack_steps=10, attack_step=2.0,
                       batch_size=batch_size, epochs=1000, milestones=(), augment=True, precision=precision)


class Trainer:
    """One run's training state (or, with `stack` > 1, that of `stack` runs stacked into one
    network: arreg_core.stacked, each run's block its own batch and random start, drawn and put
    end to end every step as `stacked.train_epoch` does): network, optimizer, the step (graphed or
    eager) and an endless stream of full batches of the data set (drop_last: one shape for the graph)."""

    def __init__(self, arch, precision, graphs, data, dataset, batch_size, device, seed=0, stack=1):
        self.config = config_of(arch, precision, batch_size, dataset)
        self.device, self.data, self.stack = device, data, stack
        model = initial_model(arch, data.num_classes, dataset).to(device, memory_format=torch.channels_last)
        self.model = stacked.StackedNetworks([model] * stack) if stack > 1 else model  # (stacked weights: 5-d)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        shape = (stack,) if stack > 1 else ()  # a stack adds up each run's loss and correct count
        self.totals = (torch.zeros(shape, device=device), torch.zeros(shape, device=device, dtype=torch.long))
        self.graphs = graphs and device.type == "cuda"
        if stack > 1:
            c = self.config
            eager = functools.partial(stacked.training_step, self.model, self.optimizer,
                                      eps=stacked.radius([c.eps] * stack, batch_size, device),
                                      step=stacked.radius([c.attack_step] * stack, batch_size, device),
                                      steps=c.attack_steps, precision=precision, totals=self.totals,
                                      cache=not self.graphs)
        else:
            eager = functools.partial(training_step, self.model, self.optimizer, config=self.config, scale=1.0,
                                      totals=self.totals, cache=not self.graphs)
        self.step = GraphedStep(eager) if self.graphs else eager
        self.seed, self.epoch, self.batches = seed, 0, iter(())
        self.attack_gen = epoch_generator(seed, 0, device, stream=1)

    def next_batch(self):
        for x, y in self.batches:
            return x.contiguous(memory_format=torch.channels_last), y
        self.epoch += 1
        gen = epoch_generator(self.seed, self.epoch, self.device, stream=0)
        self.batches = iterate_batches(self.data.x_train, self.data.y_train, self.config.batch_size, shuffle=True,
                                       augment=self.data.augment, generator=gen, device=self.device, drop_last=True)
        return self.next_batch()

    def train(self, steps: int) -> None:
        self.model.train()
        for _ in range(steps):
            blocks = [self.next_batch() for _ in range(self.stack)]
            noises = [attack_noise(self.config, x, self.attack_gen) for x, _ in blocks]
            if self.stack == 1:
                self.step(*blocks[0], noises[0])
            else:
                x = torch.cat([x for x, _ in blocks]).contiguous(memory_format=torch.channels_last)
                self.step(x, torch.cat([y for _, y in blocks]), torch.cat(noises))

    def warm_up(self) -> None:
        """The eager warm-up steps, the capture and one replay (or three eager steps)."""
        self.train(4)
        synchronize(self.device)
        if self.graphs and not self.step.captured:
            raise RuntimeError("the CUDA graph was not captured (see the warning above)")


def timed(trainers: list[Trainer], steps: int, streams: bool) -> tuple[float, float]:
    """(start, end) wall times of `steps` steps of every trainer: one after another in this thread,
    or (streams) one thread and CUDA stream per trainer."""
    device = trainers[0].device
    synchronize(device)
    start = time.perf_counter()
    if streams and len(trainers) > 1:
        def work(trainer, stream):
            with torch.cuda.stream(stream):
                trainer.train(steps)
        pool = [threading.Thread(target=work, args=(t, torch.cuda.Stream())) for t in trainers]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    else:
        for trainer in trainers:
            trainer.train(steps)
    synchronize(device)
    return start, time.perf_counter()


def _worker(conn, device_name: str, images: int, data_root) -> None:
    """A process of a shared cell: build, warm up, say ready, wait for go, time, reply."""
    try:
        device = prepare_device(device_name)
        data, dataset = training_data(images, data_root)
        data = data.to(device)
        conn.send("up")
        while (job := conn.recv()) is not None:
            arch, precision, graphs, batch_size, steps = job
            trainer = Trainer(arch, precision, graphs, data, dataset, batch_size, device)
            trainer.warm_up()
            conn.send("ready")
            conn.recv()
            synchronize(device)
            start = time.time()
            trainer.train(steps)
            synchronize(device)
            conn.send((start, time.time()))
            del trainer
    except Exception:  # noqa: BLE001 - reported by the parent
        conn.send(("error", traceback.format_exc()))


class ProcessPool:
    """Worker processes started once (torch imported, data loaded), used by the shared cells."""

    def __init__(self, n: int, device: str, images: int, data_root):
        ctx = get_context("spawn")
        self.workers = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_worker, args=(child, device, images, data_root), daemon=True)
            process.start()
            self.workers.append((parent, process))
        for conn, _ in self.workers:  # every worker started (torch imported, data on the device) before any timing
            if (reply := conn.recv()) != "up":
                raise RuntimeError(f"a worker failed to start: {reply}")

    def run(self, n: int, job: tuple) -> list[tuple[float, float]]:
        conns = [conn for conn, _ in self.workers[:n]]
        for conn in conns:
            conn.send(job)
        replies = [conn.recv() for conn in conns]
        failed = [r for r in replies if r != "ready"]
        if failed:
            raise RuntimeError(f"a worker failed: {failed[0]}")
        for conn in conns:
            conn.send("go")
        spans = [conn.recv() for conn in conns]
        errors = [s for s in spans if s and s[0] == "error"]
        if errors:
            raise RuntimeError(f"a worker failed: {errors[0][1]}")
        return spans

    def close(self):
        for conn, process in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(10)
            if process.is_alive():
                process.kill()


def row(arch, precision, graphs, runs, sharing, spans, steps, batch_size, plain=None) -> dict:
    images = steps * batch_size
    per_run = [images / (end - start) for start, end in spans]
    span = max(end for _, end in spans) - min(start for start, _ in spans)
    per_gpu = images * len(spans) / span
    out = {"arch": arch, "precision": precision, "step": "CUDA graph" if graphs else "eager", "runs_per_gpu": runs,
           "sharing": sharing, "images_per_s_per_run": statistics.mean(per_run), "images_per_s_per_gpu": per_gpu}
    if plain:
        out["ratio_per_gpu_vs_plain"] = per_gpu / plain
    return out


def plain_rate(arch, data, device, batch_size, workers) -> float:
    """Images per second of the plain loop (fp32), one epoch after a warm-up epoch."""
    from torchvision import transforms

    model = initial_model(arch, data.num_classes, "cifar10").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    pipeline = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(PILImages(data.x_train, data.y_train, pipeline), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=True)
    plain_epoch(model, opt, loader, device)
    seconds = plain_epoch(model, opt, loader, device)
    return len(loader) * batch_size / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=256, help="the paper's: 256")
    parser.add_argument("--images", type=int, default=10240, help="training images the batches are drawn from")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8], help="runs sharing the GPU")
    parser.add_argument("--sharing", nargs="+", choices=SHARING, default=list(SHARING),
                        help="how runs share the GPU (streams: CUDA only)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds of each cell")
    parser.add_argument("--repeats", type=int, default=2, help="timings of each single-run cell (median)")
    parser.add_argument("--plain-workers", type=int, default=4, help="DataLoader workers of the plain loop")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain loop")
    parser.add_argument("--data-root", default=None, help="folder of cifar10-jpeg.tar.gz (default: $ARREG_DATA)")
    parser.add_argument("--json", default=None, help="write the table and the machine here (after every cell)")
    args = parser.parse_args(argv)
    device = prepare_device(args.device)
    data, dataset = training_data(args.images, args.data_root)
    on_device = data.to(device)
    shared = sorted(n for n in args.runs if n > 1)
    pool = (ProcessPool(max(shared, default=0), str(device), args.images, args.data_root)
            if shared and "processes" in args.sharing else None)
    meta = {**machine_info(), "device": str(device), "dataset": dataset, "images": len(data.y_train),
            "batch_size": args.batch_size, "seconds_per_cell": args.seconds, "repeats": args.repeats,
            "attack": "l-inf PGD eps 8/255, 10 steps of 2/255, random start", "memory_format": "channels_last",
            "plain_loop": "DataLoader + torchvision RandomCrop/Flip + torchattacks.PGD, fp32"}
    if device.type == "cuda":
        meta["driver"] = torch.cuda.get_device_properties(0).name
        meta["cuda"] = torch.version.cuda
    rows, errors = [], []

    def save():
        table = pd.DataFrame(rows)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"meta": meta, "results": table.to_dict("records"),
                                                   "errors": errors}, indent=2) + "\n")
        return table

    try:
        for arch in args.archs:
            plain = None if args.no_plain else plain_rate(arch, data, device, args.batch_size, args.plain_workers)
            if plain:
                rows.append({"arch": arch, "precision": "fp32", "step": "plain loop", "runs_per_gpu": 1,
                             "sharing": "-", "images_per_s_per_run": plain, "images_per_s_per_gpu": plain,
                             "ratio_per_gpu_vs_plain": 1.0})
                save()
            single = {}
            variants = [(p, g) for g in (False, True) for p in ("fp32", "bf16") if device.type == "cuda" or not g]
            trainers = {}
            for precision, graphs in variants:
                try:
                    trainers[precision, graphs] = Trainer(arch, precision, graphs, on_device, dataset, args.batch_size,
                                                          device)
                    trainers[precision, graphs].warm_up()
                except Exception as err:  # noqa: BLE001 - recorded, the matrix goes on
                    errors.append(f"{arch} {precision} graphs={graphs}: {type(err).__name__}: {err}")
                    trainers.pop((precision, graphs), None)
            rates = {key: [] for key in trainers}
            for _ in range(args.repeats):
                for key, trainer in trainers.items():
                    start, end = timed([trainer], 3, False)
                    steps = max(3, round(args.seconds * 3 / (end - start)))
                    start, end = timed([trainer], steps, False)
                    rates[key].append(steps * args.batch_size / (end - start))
            for (precision, graphs), r in rates.items():
                single[precision, graphs] = statistics.median(r)
                rows.append({"arch": arch, "precision": precision, "step": "CUDA graph" if graphs else "eager",
                             "runs_per_gpu": 1, "sharing": "-", "images_per_s_per_run": single[precision, graphs],
                             "images_per_s_per_gpu": single[precision, graphs],
                             **({"ratio_per_gpu_vs_plain": single[precision, graphs] / plain} if plain else {})})
            save()
            trainers.clear()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            for graphs in (True, False):
                options = [key for key in single if key[1] == graphs]
                if not options:
                    continue
                precision = max(options, key=single.get)[0]
                rate = single[precision, graphs]
                for n in shared:
                    steps = max(3, round(args.seconds * rate / args.batch_size / n))
                    if "stacked" in args.sharing:  # eager too: one stack launches what one run does
                        try:
                            trainer = Trainer(arch, precision, graphs, on_device, dataset, args.batch_size, device,
                                              stack=n)
                            trainer.warm_up()
                            start, end = timed([trainer], 3, False)  # its own rate, for the steps of --seconds
                            stack_steps = max(3, round(args.seconds * 3 / (end - start)))
                            start, end = timed([trainer], stack_steps, False)
                            rows.append(row(arch, precision, graphs, n, "stacked", [(start, end)] * n, stack_steps,
                                            args.batch_size, plain))
                            del trainer
                        except Exception as err:  # noqa: BLE001 - recorded, the matrix goes on
                            errors.append(f"{arch} {precision} graphs={graphs} {n} stacked: {type(err).__name__}: {err}")
                    if pool is not None and (graphs or n == (4 if 4 in shared else shared[0])):  # eager: one count
                        try:
                            spans = pool.run(n, (arch, precision, graphs, args.batch_size, steps))
                            rows.append(row(arch, precision, graphs, n, "processes", spans, steps, args.batch_size,
                                            plain))
                        except Exception as err:  # noqa: BLE001
                            errors.append(f"{arch} {precision} graphs={graphs} {n} processes: {err}")
                    if "streams" in args.sharing and graphs and device.type == "cuda" and n in (2, 4):
                        try:
                            group = [Trainer(arch, precision, True, on_device, dataset, args.batch_size, device, seed=s)
                                     for s in range(n)]
                            for trainer in group:
                                trainer.warm_up()
                            start, end = timed(group, steps, True)
                            rows.append(row(arch, precision, True, n, "streams", [(start, end)] * n, steps,
                                            args.batch_size, plain))
                            del group
                        except Exception as err:  # noqa: BLE001
                            errors.append(f"{arch} {precision} {n} streams: {type(err).__name__}: {err}")
                    save()
                    print(f"[gpu_step_matrix] {arch} {precision} graphs={graphs} x{n} done", flush=True)
    finally:
        if pool:
            pool.close()
    table = save()
    print(json.dumps(meta))
    print(table.to_string(index=False, float_format="{:.2f}".format))
    for error in errors:
        print("error:", error)
    return table


if __name__ == "__main__":
    main()
