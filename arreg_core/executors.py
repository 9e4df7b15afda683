"""Executors of `arreg prepare` / `arreg book`: they run jobs (one run of the run store with the
analysis pieces its notebooks read) in parallel and report each finished run.

    LocalExecutor(workers=2)                                  # processes on this machine (default)
    RayExecutor(address="auto", gpus_per_run=0.25, cpus_per_run=4)  # one Ray task per run

A run resumes from its last finished epoch (`runs.get_or_train`), so a job whose process or node
dies is simply run again: the local executor notices a dead worker at once and retries its run
once, then stops with one line naming the run; Ray retries a task whose worker or node died
(`max_retries`). Both print one line per finished run (name, seconds, node) above a tqdm bar.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from multiprocessing import connection, get_context
from pathlib import Path

from tqdm import tqdm

from .device import cpu_model, device_name
from .runs import read_json, run_path
from .train import TrainConfig

EXECUTORS = ("local", "ray")


class ExecutorError(RuntimeError):
    """A job could not be run (its worker died too often, the store is not shared, ...); one line."""


@dataclass(frozen=True)
class Job:
    """One run of the store (trained if missing) and its analysis pieces (computed if missing)."""

    config: TrainConfig
    runs_dir: str
    device: str = "auto"
    data_root: str | None = None
    pieces: tuple = ()
    analysis_params: dict | None = None
    threads: int | None = None  # torch threads of the process that runs it (None: leave as is)
    execution: dict = field(default_factory=dict)  # channels_last / compile / cuda_graphs (Profile.step_options)

    @property
    def name(self) -> str:
        return run_path(self.config, self.runs_dir).name


def checkpoint_epoch(job: Job) -> int:
    """The last finished epoch stored for the job's run (0: none)."""
    record = run_path(job.config, job.runs_dir) / "checkpoint.json"
    try:
        return int(read_json(record)["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def run_job(job: Job, node: str | None = None) -> dict:
    """Train the job's run if missing (resuming from its checkpoint) and compute its artifacts;
    returns {run, seconds, node, found, resumed_from}: found where this call trained nothing (another
    process may have trained the run while this one waited for its lock)."""
    import torch

    from . import analysis
    from .runs import get_or_train

    if job.threads:
        torch.set_num_threads(job.threads)
    start = time.perf_counter()
    run = get_or_train(job.config, job.runs_dir, device=job.device, data_root=job.data_root, progress=False,
                       **job.execution)
    analysis.analyze(run, pieces=job.pieces, params=job.analysis_params, device=job.device, data_root=job.data_root)
    return {"run": run.path.name, "seconds": time.perf_counter() - start, "node": node or socket.gethostname(),
            "found": run.trained_from is None, "resumed_from": run.trained_from or 0}


def run_stack(jobs: list[Job], node: str | None = None):
    """`run_job` for jobs whose runs train as one stack (`runs.train_stacked`, in this process),
    each run's analysis pieces then computed; yields one result per job as its analysis ends, its
    seconds the stack's training and its own analysis."""
    from . import analysis
    from .runs import train_stacked

    first, start = jobs[0], time.perf_counter()
    trained = train_stacked([job.config for job in jobs], first.runs_dir, device=first.device,
                            data_root=first.data_root, channels_last=first.execution.get("channels_last", False),
                            cuda_graphs=first.execution.get("cuda_graphs", False))
    training = time.perf_counter() - start
    for job, run in zip(jobs, trained):
        start = time.perf_counter()
        analysis.analyze(run, pieces=job.pieces, params=job.analysis_params, device=job.device, data_root=job.data_root)
        yield {"run": run.path.name, "seconds": training + time.perf_counter() - start,
               "node": node or socket.gethostname(), "found": run.trained_from is None,
               "resumed_from": run.trained_from or 0, "stacked_runs": len(jobs)}


def gpu_model() -> dict:
    """{"gpu": name, "torch": version} where a CUDA GPU is visible, else {} (no CUDA initialisation)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"gpu": device_name(torch.device("cuda", 0)), "torch": torch.__version__}


class Progress:
    """One line per finished run above a tqdm bar of runs done; with `log`, also one JSON line per
    event appended to that file (start, each finished run, a heartbeat every `heartbeat_s`, end;
    `elapsed_s` since the start), so the wall time of a store built over several invocations adds
    up (`store_wall_time`), even when one was killed -9 (to within a heartbeat)."""

    def __init__(self, total: int, prefix: str = "[arreg prepare]", log: Path | None = None, about: dict | None = None,
                 heartbeat_s: float = 60.0):
        self.bar = tqdm(total=total, desc="runs done", unit="run", dynamic_ncols=True)
        self.prefix, self.log, self.start = prefix, log, time.perf_counter()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._log({"event": "start", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
                   "cpu_model": cpu_model(), "cpus": os.cpu_count(), **gpu_model(), "jobs": total, **(about or {})})
        if log is not None:
            threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True).start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            self._log({"event": "alive"})

    def _log(self, record: dict) -> None:
        if self.log is not None:
            with self._lock:
                record = {**record, "elapsed_s": round(time.perf_counter() - self.start, 1)}
                with open(self.log, "a") as f:  # one short line per write: a killed process leaves whole lines
                    f.write(json.dumps(record, default=str) + "\n")

    def note(self, text: str) -> None:
        self.bar.write(f"{self.prefix} {text}")

    def done(self, result: dict) -> None:
        how = "found" if result["found"] else (
            f"resumed from epoch {result['resumed_from']}" if result["resumed_from"] else "trained")
        if not result["found"] and result.get("stacked_runs", 1) > 1:
            how += f" in a stack of {result['stacked_runs']} runs"
        self.note(f"{result['run']}  {result['seconds']:.1f} s  on {result['node']}  ({how})")
        self._log({"event": "run", **result, "seconds": round(result["seconds"], 1)})
        self.bar.update(1)

    def close(self) -> None:
        self._stop.set()
        self._log({"event": "end"})
        self.bar.close()


def store_wall_time(log: Path) -> dict:
    """Wall time of building a store from a `Progress` log: per invocation, the elapsed time of its
    last event (an invocation killed before its end line counts up to its last heartbeat), and
    their sum; with the runs each invocation trained (not found) and the CPU models it ran on."""
    sessions = []
    for line in Path(log).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a full disk
        if record.get("event") == "start":
            sessions.append({"date": record.get("date"), "cpu_model": record.get("cpu_model"),
                             "wall_s": 0.0, "trained": 0, "found": 0, "ended": False})
        elif sessions:
            sessions[-1]["wall_s"] = record.get("elapsed_s", sessions[-1]["wall_s"])
            if record.get("event") == "run":
                sessions[-1]["found" if record.get("found") else "trained"] += 1
            elif record.get("event") == "end":
                sessions[-1]["ended"] = True
    return {"sessions": sessions, "wall_s": round(sum(s["wall_s"] for s in sessions), 1),
            "trained": sum(s["trained"] for s in sessions),
            "cpu_models": sorted({s["cpu_model"] for s in sessions if s["cpu_model"]})}


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with status {exitcode}"


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Exit this worker within `every_s` of its parent's death (a driver killed by SIGTERM or
    SIGKILL runs no clean-up): a worker left behind would go on training, holding its run's lock.
    The run resumes from its last checkpoint when the store is prepared again."""

    def watch():
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker_loop(conn, parent: int) -> None:
    """A local worker: run the jobs it is sent, reply with each result or error, until None."""
    _exit_with_parent(parent)
    while (job := conn.recv()) is not None:
        try:
            reply = ("done", run_job(job))
        except BaseException as err:  # noqa: BLE001 - sent to the parent, which re-raises it
            reply = ("error", err, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception:  # an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}"), reply[2]))


def _receive(conn):
    """The worker's reply, or None where its process died before sending one."""
    try:
        return conn.recv() if conn.poll() else None
    except (EOFError, OSError):
        return None


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


@dataclass
class LocalExecutor:
    """Jobs in `workers` processes of this machine (spawned, one torch thread each when workers > 1;
    in this process when workers <= 1). A worker that dies (kill -9, out of memory) is noticed as
    it dies, through its process sentinel: its run is retried `retries` times in a new worker,
    resuming from its checkpoint, and then the executor stops with one line naming the run. A
    worker whose driver dies exits within a second (`_exit_with_parent`)."""

    workers: int = 2
    retries: int = 1

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")

    def map(self, jobs: list[Job], progress: Progress | None = None) -> list[dict]:
        """Run every job; returns their results in completion order."""
        progress = progress or Progress(len(jobs))
        try:
            if self.workers <= 1:
                results = []
                for job in jobs:
                    results.append(run_job(job))
                    progress.done(results[-1])
                return results
            return self._map_processes([replace(job, threads=1) for job in jobs], progress)
        finally:
            progress.close()

    def _map_processes(self, jobs: list[Job], progress: Progress) -> list[dict]:
        ctx = get_context("spawn")
        pending, idle, busy, results = deque(jobs), [], [], []
        deaths: dict[str, int] = {}
        try:
            while pending or busy:
                while pending and len(busy) < self.workers:
                    worker = idle.pop() if idle else _Worker(ctx)
                    worker.job = pending.popleft()
                    worker.conn.send(worker.job)
                    busy.append(worker)
                ready = connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    busy.remove(worker)
                    job, worker.job = worker.job, None
                    reply = _receive(worker.conn)
                    if reply is None:  # the process died without replying
                        worker.process.join(5)
                        worker.process.kill()
                        worker.conn.close()
                        how = describe_exit(worker.process.exitcode)
                        deaths[job.name] = deaths.get(job.name, 0) + 1
                        if deaths[job.name] > self.retries:
                            raise ExecutorError(
                                f"the worker training run {job.name} {how}, {deaths[job.name]} time(s): "
                                f"free memory or use fewer --workers, then rerun (it resumes from epoch "
                                f"{checkpoint_epoch(job)})")
                        progress.note(f"the worker training {job.name} {how}: retrying it from epoch "
                                      f"{checkpoint_epoch(job)}")
                        pending.appendleft(job)
                        continue
                    idle.append(worker)
                    if reply[0] == "error":
                        err, trace = reply[1], reply[2]
                        if os.environ.get("ARREG_DEBUG"):
                            print(trace, flush=True)
                        raise err
                    results.append(reply[1])
                    progress.done(reply[1])
        finally:
            for worker in idle + busy:
                if worker.job is not None:  # stopped mid-run: it resumes from its checkpoint next time
                    worker.process.kill()
                worker.stop()
        return results


# --- Ray -----------------------------------------------------------------------------------

STORE_MARKER = ".arreg-store-check-{}"


class StoreNotSharedError(ExecutorError, FileNotFoundError):
    """A Ray node does not see the run store the driver writes to."""


def check_store_visible(runs_dir: str, marker: str, token: str, node: str) -> None:
    """Raise StoreNotSharedError unless this node reads the marker file the driver wrote."""
    try:
        seen = (Path(runs_dir) / marker).read_text()
    except OSError:
        seen = None
    if seen != token:
        raise StoreNotSharedError(
            f"node {node} does not see the run store {runs_dir} that the driver writes: put the store on "
            f"a filesystem every node mounts at the same path (NFS, Lustre, ...) and pass it with --runs-dir")


def _ray_task(job: Job, marker: str, token: str) -> dict:
    """One Ray task: check the store is shared, then run the job."""
    import ray

    context = ray.get_runtime_context()
    node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()}, node {context.get_node_id()[:8]})"
    check_store_visible(job.runs_dir, marker, token, node)
    return run_job(job, node=node)


def use_loopback(ray) -> None:
    """Keep the Ray processes this one starts on 127.0.0.1, unreachable from the network (a local
    cluster needs no more). Ray binds each process to its node's IP, which it takes from
    services.get_node_ip_address: the loopback address where multi-node clusters are switched off,
    as on macOS and Windows (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0). The variable reaches the processes
    Ray starts; the constant, this process, whose Ray read the variable on import."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


def require_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install -e '.[cluster]'") from None
    return ray


@dataclass
class RayExecutor:
    """Each job one Ray task with `cpus_per_run` CPUs and `gpus_per_run` GPUs (fractional GPUs let
    small networks share one). `address`: "auto" joins the running cluster of this machine, an
    address "host:port" joins that cluster, None starts a local one on 127.0.0.1 for the duration
    of `map` (or uses the cluster this process is connected to).
    `init_kwargs` go to ray.init when this executor starts or joins the cluster. The run store must
    be on a filesystem every node sees at the same path: each task checks it first. A task whose
    worker or node dies is retried `max_retries` times and resumes from its checkpoint."""

    address: str | None = None
    gpus_per_run: float = 0.0
    cpus_per_run: float = 1.0
    max_retries: int = 3
    init_kwargs: dict | None = None

    def __post_init__(self):
        if not self.cpus_per_run > 0:
            raise ValueError(f"--cpus-per-run must be positive, got {self.cpus_per_run}")
        if not self.gpus_per_run >= 0:
            raise ValueError(f"--gpus-per-run must be 0 or more, got {self.gpus_per_run}")
        if self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run):
            raise ValueError(f"--gpus-per-run above 1 must be whole, got {self.gpus_per_run}")

    def connect(self):
        """Ray, initialised (connected to the cluster or a local one started); returns (ray, whether
        this call initialised it)."""
        ray = require_ray()
        started = not ray.is_initialized()
        if started:
            kwargs = {"include_dashboard": False, "log_to_driver": True, **(self.init_kwargs or {})}
            if self.address is None:  # a local cluster, just for this process: loopback, small object store
                use_loopback(ray)
                kwargs.setdefault("object_store_memory", 256 * 1024**2)
            ray.init(address=self.address, **kwargs)
        return ray, started

    def map(self, jobs: list[Job], progress: Progress | None = None) -> list[dict]:
        ray, started = self.connect()
        progress = progress or Progress(len(jobs))
        runs_dirs = {job.runs_dir for job in jobs}
        token, marker = uuid.uuid4().hex, STORE_MARKER.format(uuid.uuid4().hex[:12])
        threads = max(1, int(self.cpus_per_run))
        task = ray.remote(_ray_task).options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                                             max_retries=self.max_retries, name="arreg-run")
        refs, results = {}, []
        try:
            for runs_dir in runs_dirs:
                write_store_marker(Path(runs_dir) / marker, token)
            refs = {task.remote(replace(job, threads=threads), marker, token): job for job in jobs}
            while refs:
                (ref,), _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if isinstance(err.cause, BaseException) else None
                    raise (cause or ExecutorError(f"run {job.name} failed: {str(err).splitlines()[0]}")) from None
                except ray.exceptions.RayError as err:  # worker or node lost more than max_retries times
                    raise ExecutorError(f"run {job.name} failed after {self.max_retries} retries: "
                                        f"{type(err).__name__}: {str(err).splitlines()[0]}") from None
                results.append(result)
                progress.done(result)
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            for runs_dir in runs_dirs:
                (Path(runs_dir) / marker).unlink(missing_ok=True)
            progress.close()
            if started:  # a local cluster ends with the jobs (`arreg book` goes on to the notebooks)
                ray.shutdown()
        return results


def write_store_marker(path: Path, token: str) -> None:
    """The file each Ray task reads to check it sees the driver's run store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)


def make_executor(kind: str = "local", workers: int = 2, address: str | None = None,
                  gpus_per_run: float | None = None, cpus_per_run: float | None = None):
    """The executor the CLI's flags name; flags of the other executor are refused."""
    if kind == "local":
        given = [flag for flag, value in (("--address", address), ("--gpus-per-run", gpus_per_run),
                                          ("--cpus-per-run", cpus_per_run)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only with --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, gpus_per_run or 0.0, 1.0 if cpus_per_run is None else cpus_per_run)
    raise ValueError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
