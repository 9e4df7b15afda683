"""The run store: one directory per trained network, keyed by the hash of its full config.

    <runs_dir>/<arch>-<dataset>-<method>-eps<eps>-<key>/
        config.json          the TrainConfig; it must hash to <key> (an edited one is refused)
        checkpoint-NNNN.pt   model, optimizer, scheduler and history after finished epoch NNNN
        checkpoint.json      the record: its epoch, file name and sha256. A checkpoint file is
                             written first, then the record is replaced (one atomic rename), then
                             the older checkpoint file is removed: a kill at any instant leaves a
                             record naming a whole checkpoint, so the run resumes from the last
                             finished epoch. A checkpoint the record does not name is never used.
        history.json         one row per epoch
        metrics.json         the paper's metrics of the finished run (evaluate.evaluate), all of them
        machine.json         the device, its name, the torch threads and version of each attempt
                             (a resume under others says so: the result is not bit-identical then)
        failed.json          why the last attempt stopped (bad value, NaN loss, full disk), if it did
    <runs_dir>/manifest.json the sha256 of every run's config, history, metrics, machine and analysis
                             artifacts (arreg_core.manifest), checked before any of them is read

`get_or_train` trains only what is missing, resumes an interrupted run from its last finished
epoch, writes every file atomically (temp file + rename; the temp files of a killed write are
removed on the next attempt), and holds a file lock on the run so two processes never train it
twice. Checkpoints load with torch.load(weights_only=True). A run directory that is a symbolic link,
or a checkpoint record naming a file outside its run, is refused: nothing outside a store is
deleted, written or loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock, Timeout

from . import data as data_module
from . import manifest, stacked
from .device import device_name, prepare_device, resolve_device
from .evaluate import evaluate
from .io import atomic_write_bytes, atomic_write_json, read_json  # noqa: F401 (part of runs' API)
from .train import TrainConfig, build_model_for, build_optimizer, fit

# Config fields left out of the run key while they hold their default, so that adding a field
# keeps the keys (and the committed runs) of every config that does not use it.
KEY_DEFAULTS_OMITTED = {"precision": "fp32", "eps_warmup_epochs": 0}
# The metrics every finished run stores (evaluate.evaluate plus the training's length and time).
REQUIRED_METRICS = ("train_acc", "test_acc", "gap_acc", "train_loss", "test_loss", "gap_loss", "pgd_acc",
                    "epochs_trained", "train_seconds")
TIMING_METRICS = ("train_seconds",)  # measure the machine, not the result: two runs of one config differ there
RUN_NAME = re.compile(r"^[\w.]+-[\w.-]+-(?:none|pgd|fgsm)-eps[^-/]+-(?P<key>[0-9a-f]{12})$")
CHECKPOINT_FILE = re.compile(r"^checkpoint(?:-\d+)?\.pt$")
# Everything a run directory may hold; `arreg book --fresh` deletes only folders of such directories.
RUN_FILES = re.compile(r"^(?:config|checkpoint|history|metrics|machine|failed)\.json$|^checkpoint(?:-\d+)?\.pt$"
                       r"|^\.lock$|^analysis$|^\..+\.tmp$")
MACHINE_FIELDS = ("device", "device_name", "threads", "torch")  # what a bit-identical resume keeps


class RunError(RuntimeError):
    """A problem with one run of the store; the message names the run and the command that fixes it."""


class CorruptCheckpointError(RunError):
    """A checkpoint whose bytes do not match the sha256 recorded when it was written, or that is
    not a checkpoint this project wrote."""


class BrokenRunError(RunError):
    """A run directory whose config.json or metrics.json cannot be trusted (edited, truncated)."""


class TrainingFailedError(RunError):
    """Training stopped: the loss became NaN or infinite."""


class LockTimeoutError(RunError):
    """Another process held the run's lock longer than --lock-timeout."""


def checkout() -> Path:
    """The repository this package lives in (the folder holding notebooks/), else the working directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else Path.cwd()


def resolve_store(path) -> Path:
    """A run store named by $ARREG_RUNS or by a default (a profile's runs_dir, runs/), as the one path
    every command, notebook and worker uses: a relative one is relative to the checkout, wherever
    the process runs. (A --runs-dir flag is a path as typed, relative to the working directory.)"""
    return checkout() / Path(path).expanduser()


def default_runs_dir() -> Path:
    """$ARREG_RUNS, else runs/ (`resolve_store`)."""
    return resolve_store(os.environ.get("ARREG_RUNS") or "runs")


def _canonical(value):
    """Numbers as JSON writes them once the way they were typed is forgotten: 8.0 -> 8 (an
    integral float is its integer), -0.0 -> 0; lists and dicts element-wise."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def canonical_config(config: TrainConfig) -> dict:
    """The config as its key hashes it: canonical numbers, and the fields of KEY_DEFAULTS_OMITTED
    left out while at their default."""
    d = config.to_dict()
    for name, default in KEY_DEFAULTS_OMITTED.items():
        if d.get(name) == default:
            del d[name]
    return _canonical(d)


def run_key(config: TrainConfig) -> str:
    """Stable 12-hex-digit key: sha256 of the config's canonical JSON (TrainConfig(eps=8) and
    TrainConfig(eps=8.0) are the same run)."""
    blob = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_name(config: TrainConfig) -> str:
    eps = f"{config.eps:g}"
    return f"{config.arch}-{config.dataset}-{config.method}-eps{eps}-{run_key(config)}"


def run_path(config: TrainConfig, runs_dir=None) -> Path:
    return Path(runs_dir or default_runs_dir()) / run_name(config)


def retrain_command(path: Path) -> str:
    return f"arreg train --config {Path(path) / 'config.json'} --runs-dir {Path(path).parent} --retrain"


def _read_trusted_json(path: Path, what: str):
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrokenRunError(f"{path} is not valid JSON ({err}): {what}") from None


def check_run_dir(path: Path) -> None:
    """Refuse a run directory that is a symbolic link (its files live outside the store) or no folder."""
    if path.is_symlink():
        raise BrokenRunError(f"{path} is a symbolic link (to {os.readlink(path)}): a run directory must be a folder "
                       f"of its store, and nothing outside a store is written, deleted or loaded: remove the link")
    if path.exists() and not path.is_dir():
        raise BrokenRunError(f"{path} is a file, not a run directory: move it out of the store")


def store_fix(run: Path, name: str) -> str:
    """The command that writes run/name again: retraining for a run's files, re-analysing for an artifact."""
    if name.startswith("analysis/"):
        return (f"delete it and re-analyse (`arreg analyze {run}`, `arreg prepare` or `arreg book` computes "
                f"what is missing)")
    return f"retrain the run with `{retrain_command(run)}`"


def verify_store(runs_dir) -> None:
    """Check every sealed file of the store's finished runs against its manifest (TamperedError)."""
    manifest.verify_store(Path(runs_dir), store_fix)


def seal_store(runs_dir) -> int:
    """Accept the store's files as they are now (after an intended change): every finished run must
    read (its config hashes to its key, its metrics are complete, its artifacts parse); then their
    sha256 become the manifest. Returns the number of files sealed."""
    from .io import read_npz

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no run store at {runs_dir}: name one with --runs-dir")
    for run in manifest.finished_runs(runs_dir):
        _read_run(run)
        for artifact in sorted((run / "analysis").glob("*.npz")):
            read_npz(artifact, store_fix(run, "analysis/"))
    return manifest.seal(runs_dir)


def remove_partial_writes(path: Path) -> None:
    """Remove what killed writes left in a run directory: temp files, and checkpoint files the
    record does not name. Call it holding the run's lock."""
    named = recorded_checkpoint(path)
    for p in path.iterdir():
        if (p.name.startswith(".") and p.name.endswith(".tmp")) or (CHECKPOINT_FILE.match(p.name) and p.name != named):
            p.unlink(missing_ok=True)


def recorded_checkpoint(path: Path) -> str | None:
    """The checkpoint file the run's record names (None: no record, or not a name of ours)."""
    record = path / "checkpoint.json"
    try:
        name = read_json(record).get("file", "checkpoint.pt") if record.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) and CHECKPOINT_FILE.match(name) else None


def save_checkpoint(path: Path, model, optimizer, scheduler, history: list) -> None:
    """checkpoint-<epoch>.pt, then the record naming it (the one atomic step that moves the run
    to this epoch), then history.json; then the previous checkpoint file goes."""
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "history": history}, buf)
    payload = buf.getvalue()
    name = f"checkpoint-{len(history):04d}.pt"
    atomic_write_bytes(path / name, payload)
    atomic_write_json(path / "checkpoint.json",
                      {"epoch": len(history), "file": name, "sha256": hashlib.sha256(payload).hexdigest()})
    manifest.write_json(path, "history.json", history)
    remove_partial_writes(path)


def load_checkpoint(path: Path, map_location="cpu") -> dict | None:
    """The last finished checkpoint of the run at `path`, or None if it has none.
    Raises CorruptCheckpointError if the file does not match its recorded sha256 or is not a
    checkpoint this project wrote."""
    record = path / "checkpoint.json"
    if not record.exists():
        return None
    fix = f"retrain the run from scratch with `{retrain_command(path)}`"
    try:
        info = read_json(record)
        name, expected = info.get("file", "checkpoint.pt"), info["sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise CorruptCheckpointError(f"{record} is not a checkpoint record this project wrote: {fix}") from None
    if not isinstance(name, str) or not CHECKPOINT_FILE.match(name):
        raise CorruptCheckpointError(f"{record} names {name!r}, not a checkpoint file of this run (nothing outside "
                                     f"a run is loaded): {fix}")
    ckpt = path / name
    if ckpt.is_symlink():
        raise CorruptCheckpointError(f"{ckpt} is a symbolic link, not a checkpoint file of this run: {fix}")
    if not ckpt.exists():
        raise CorruptCheckpointError(f"{ckpt}, named by {record}, is missing: {fix}")
    payload = ckpt.read_bytes()
    if hashlib.sha256(payload).hexdigest() != expected:
        raise CorruptCheckpointError(f"{ckpt} does not match the sha256 recorded in {record}: {fix}")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise CorruptCheckpointError(f"{ckpt} is not a checkpoint this project wrote (it was not loaded: "
                                     f"{str(err).splitlines()[0][:120]}): {fix}") from None


def checkpoint_status(path: Path) -> str:
    """'epoch N' for a usable checkpoint, 'none', or 'corrupt' (for `arreg runs`)."""
    try:
        ckpt = load_checkpoint(path)
    except CorruptCheckpointError:
        return "corrupt"
    except OSError:
        return "unreadable"
    return "none" if ckpt is None else f"epoch {len(ckpt['history'])}"


@dataclass
class Run:
    """A finished run: where it lives, its config, metrics and per-epoch history."""

    path: Path
    config: TrainConfig
    metrics: dict
    history: list
    trained_from: int | None = None  # the epoch this call trained it from (0: scratch); None: found stored

    def load_model(self, device="auto") -> torch.nn.Module:
        """The trained network, in eval mode, on `device`."""
        from .models import build_model

        ckpt = load_checkpoint(self.path)
        if ckpt is None:
            raise FileNotFoundError(f"{self.path} has no checkpoint (artifacts only): retrain it with "
                                    f"`{retrain_command(self.path)}`")
        state = ckpt["model"]
        num_classes = next(v.shape[0] for k, v in state.items() if k.endswith("fc.weight"))
        model = build_model(self.config.arch, num_classes, self.config.width, dataset=self.config.dataset)
        model.load_state_dict(state)
        return model.to(prepare_device(device)).eval()


def stored_config(path: Path) -> TrainConfig:
    """The config of the run at `path`, verified: it must hash to the key in the folder's name."""
    path = Path(path)
    file = path / "config.json"
    fields = _read_trusted_json(file, f"restore it, or delete {path} to train that run again")
    try:
        if not isinstance(fields, dict):
            raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
        config = TrainConfig.from_dict(fields)
    except ValueError as err:
        raise BrokenRunError(f"{file} is not a valid config ({err}): restore it, or delete {path}") from None
    name = RUN_NAME.match(path.name)
    if name and name["key"] != run_key(config) and name["key"] == _legacy_key(fields):
        raise BrokenRunError(f"{path.name} is stored under its key of before canonical keys: rename it with "
                             f"`arreg runs --migrate --runs-dir {path.parent}`")
    if name and name["key"] != run_key(config):
        raise BrokenRunError(f"{file} does not hash to {name['key']}, the key in its folder's name: it was edited "
                             f"after the run was trained. Restore it, or delete {path} to train that run again")
    return config


def load_run(path: Path) -> Run | None:
    """The finished run at `path`, or None if it has not finished. Raises BrokenRunError if its
    config.json does not hash to the folder's key or its metrics.json lacks a metric, and
    manifest.TamperedError if a file does not match the store's manifest."""
    path = Path(path)
    check_run_dir(path)
    if not (path / "metrics.json").exists():
        return None
    run = _read_run(path)
    for name in manifest.sealed_files(path):
        if not name.startswith("analysis/"):  # an artifact is checked when it is read
            manifest.check(path, name, store_fix(path, name))
    return run


def _read_run(path: Path) -> Run:
    """The finished run at `path`, its config and metrics checked (not the manifest)."""
    config = stored_config(path)
    fix = f"retrain it with `{retrain_command(path)}`"
    metrics = _read_trusted_json(path / "metrics.json", fix)
    missing = [m for m in REQUIRED_METRICS
               if not isinstance(metrics, dict) or not isinstance(metrics.get(m), (int, float))]
    if missing:
        raise BrokenRunError(f"{path / 'metrics.json'} lacks {', '.join(missing)} (edited or truncated): {fix}")
    history = _read_trusted_json(path / "history.json", fix) if (path / "history.json").exists() else []
    return Run(path, config, metrics, history)


def epoch_hooks(config: TrainConfig, data: data_module.ImageData) -> list:
    """End-of-epoch hooks a config asks for: spectral clipping (appendix B.4.2)."""
    if config.spectral_norm is None:
        return []
    from .spectral_clip import spectral_clip_hook

    return [spectral_clip_hook(config.spectral_norm, data.image_size)]


def _lock_owner(path: Path) -> str:
    try:
        pid = (path / ".lock").read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def default_lock_timeout() -> float | None:
    value = os.environ.get("ARREG_LOCK_TIMEOUT")
    return float(value) if value else None


@contextlib.contextmanager
def run_lock(path: Path, timeout: float | None = None):
    """Hold the run's file lock. A process that has to wait says so once, naming the holder's pid;
    after `timeout` seconds (None: $ARREG_LOCK_TIMEOUT, else forever) it gives up with LockTimeoutError."""
    timeout = default_lock_timeout() if timeout is None else timeout
    lock = _file_lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        owner = _lock_owner(path)
        print(f"arreg: waiting for {path.name}, locked by {owner}", file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise LockTimeoutError(f"{path.name} is still locked by {owner} after {timeout:g} s: let it finish, "
                                   f"or stop that process and rerun (the run resumes from its last epoch)") from None
    try:
        yield
    finally:
        lock.release()


def _file_lock(path: Path) -> FileLock:
    """The run's file lock (not acquired); whoever acquires it writes its pid into it."""
    return FileLock(str(path / ".lock"), on_acquired=_write_pid)


def try_run_lock(path: Path) -> FileLock | None:
    """The run's file lock, acquired, where no other process holds it; else None (no waiting)."""
    lock = _file_lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def discard_training(path: Path) -> None:
    """What `--retrain` throws away, finished state first: metrics, checkpoint record and files,
    history. config.json and the analysis artifacts stay (artifacts recompute when the checkpoint
    they were computed from changes)."""
    for name in ("metrics.json", "checkpoint.json", "history.json", "machine.json", "failed.json"):
        (path / name).unlink(missing_ok=True)
    remove_partial_writes(path)


def mark_failed(path: Path, error: BaseException) -> None:
    """Record why an attempt stopped, for `arreg runs`; best effort (the disk may be full)."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    with contextlib.suppress(OSError):
        atomic_write_json(path / "failed.json", {"reason": f"{type(error).__name__}: {reason}",
                                                 "epoch": _checkpoint_epoch(path), "time": time.time()})


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(read_json(path / "checkpoint.json")["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _attempt(epoch: int, device: torch.device, stacked_runs: int = 1) -> dict:
    attempt = {"from_epoch": epoch, "device": str(device), "device_name": device_name(device),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    return {**attempt, "stacked_runs": stacked_runs} if stacked_runs > 1 else attempt


def _describe(attempt: dict) -> str:
    threads, stacked = attempt.get("threads"), attempt.get("stacked_runs", 1)
    return (f"{threads} thread{'' if threads == 1 else 's'} on {attempt.get('device')} ({attempt.get('device_name')}, "
            f"torch {attempt.get('torch')}{f', in a stack of {stacked} runs' if stacked > 1 else ''})")


def record_machine(path: Path, epoch: int, device: torch.device, stacked_runs: int = 1) -> None:
    """Add this attempt (from `epoch`) to machine.json; a resume under another device, CPU or GPU
    model, thread count, torch version or stack size (`stacked`) than the attempt before says so in
    one line: the run is still a run of its config (same key), but not bit-identical to one trained
    without a break."""
    try:
        attempts = read_json(path / "machine.json")["attempts"] if epoch else []
    except (OSError, ValueError, KeyError, TypeError):
        attempts = []  # no record (a run of an older version): nothing to compare with
    now = _attempt(epoch, device, stacked_runs)
    if attempts and (any(attempts[-1].get(k) != now[k] for k in MACHINE_FIELDS)
                     or attempts[-1].get("stacked_runs", 1) != stacked_runs):
        print(f"arreg: {path.name} resumes from epoch {epoch} with {_describe(now)}, its epochs before ran with "
              f"{_describe(attempts[-1])}: the result is not bit-identical to an uninterrupted run "
              f"(machine.json records both)", file=sys.stderr, flush=True)
    manifest.write_json(path, "machine.json", {"attempts": [*attempts, now]})


def get_or_train(config: TrainConfig, runs_dir=None, *, device="auto", data_root=None,
                 data: data_module.ImageData | None = None, channels_last: bool = False,
                 compile: bool | str = False, cuda_graphs: bool = False, progress: bool = True, retrain: bool = False,
                 lock_timeout: float | None = None) -> Run:
    """The finished run of `config`: loaded if stored, else trained (resuming from the last
    finished epoch of an interrupted attempt), evaluated and stored. `retrain` trains a run
    again from scratch into its directory (a finished run whose checkpoint is missing or corrupt).
    An attempt that fails after it started leaves failed.json with the reason."""
    path = run_path(config, runs_dir)
    check_run_dir(path)
    if not retrain and (done := load_run(path)) is not None:
        return done
    device = resolve_device(device)  # before creating anything, so that a bad device or
    if data is None:  # missing data leaves no trace
        data = data_module.load_data(config.dataset, root=data_root, n_train=config.n_train,
                                     n_test=config.n_test, seed=config.subset_seed)
    path.mkdir(parents=True, exist_ok=True)
    with run_lock(path, lock_timeout):
        if not retrain:
            if (done := load_run(path)) is not None:  # another process may have finished it while we waited
                return done
        begin_attempt(config, path, retrain)
        try:
            start = _train(config, path, data, device, channels_last, compile, cuda_graphs, progress)
        except Exception as err:
            mark_failed(path, err)
            raise
    return replace(load_run(path), trained_from=start)


def begin_attempt(config: TrainConfig, path: Path, retrain: bool = False) -> None:
    """Ready the locked run directory `path` for training: an edited config.json refused (unless
    `retrain`), partial writes of a killed attempt gone (with `retrain`, the finished state too),
    config.json written, an earlier failure forgotten."""
    if not retrain and (path / "config.json").exists():
        stored_config(path)  # an edited config.json is refused, not trained over
    remove_partial_writes(path)
    if retrain:
        discard_training(path)
    manifest.write_json(path, "config.json", config.to_dict())
    (path / "failed.json").unlink(missing_ok=True)


def resume_state(config: TrainConfig, path: Path, data, device) -> tuple:
    """(model, optimizer, scheduler, history) of the run at `path`: from its checkpoint, else new."""
    model = build_model_for(config, data).to(device)
    optimizer, scheduler = build_optimizer(config, model)
    history: list = []
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        history = ckpt["history"]
    return model, optimizer, scheduler, history


def epoch_saver(config: TrainConfig, path: Path):
    """`save(model, optimizer, scheduler, history)` after each epoch: the checkpoint, unless the
    epoch's loss diverged (then TrainingFailedError, and the run keeps its epoch before)."""
    def save(model, optimizer, scheduler, history):
        loss = history[-1]["train_input_loss"]
        if not math.isfinite(loss):  # stop at this epoch; the run keeps the one before
            raise TrainingFailedError(
                f"{path.name}: the training loss is {loss} at epoch {len(history)}: training diverged. Lower lr "
                f"(now {config.lr:g}) or eps; the run keeps its last finished epoch ({len(history) - 1})")
        save_checkpoint(path, model, optimizer, scheduler, history)

    return save


def finish_run(path: Path, model, history: list, data, device) -> None:
    """Store a trained run's history and test metrics (`evaluate`): the run is finished."""
    manifest.write_json(path, "history.json", history)  # a kill after the last record may have missed it
    metrics = evaluate(model, data, device=device)
    metrics["epochs_trained"] = len(history)
    metrics["train_seconds"] = sum(row["seconds"] for row in history)
    manifest.write_json(path, "metrics.json", metrics)


def _train(config: TrainConfig, path: Path, data, device, channels_last: bool, compile: bool | str,
           cuda_graphs: bool, progress: bool) -> int:
    """Train the run at `path` to its end (from its checkpoint) and store its metrics; returns the
    epoch it started from."""
    model, optimizer, scheduler, history = resume_state(config, path, data, device)
    start = len(history)
    record_machine(path, start, device)
    model, history = fit(config, data, device, model=model, optimizer=optimizer, scheduler=scheduler,
                         start_epoch=len(history), history=history, on_epoch_end=epoch_hooks(config, data),
                         save_checkpoint=epoch_saver(config, path), channels_last=channels_last, compile=compile,
                         cuda_graphs=cuda_graphs, progress=progress)
    finish_run(path, model, history, data, device)
    return start


def train_stacked(configs: list[TrainConfig], runs_dir=None, *, device="auto", data_root=None,
                  data: data_module.ImageData | None = None, channels_last: bool = False, cuda_graphs: bool = False,
                  lock_timeout: float | None = None) -> list[Run]:
    """The finished runs of `configs` (which must differ only in `stacked.OWN_FIELDS`), those not
    yet stored trained as one stack (arreg_core.stacked: one network of their stacked weights,
    each run's batches and attack its own) from the epoch they reached. Each run's checkpoints,
    momentum, hooks, history and metrics are its own, what the run trained alone computes to
    rounding; its history rows add `stacked_runs` and `stack_seconds` (the stack's epoch; `seconds`
    is the run's share of it), and machine.json records the stack. A run another process holds, or
    one stopped at another epoch than most, is left out of the stack and then found or trained
    alone (`get_or_train`); a run whose loss diverges stops the stack after the others saved their
    epoch, and only it records the failure."""
    stacked.check_stackable(configs)
    paths = [run_path(config, runs_dir) for config in configs]
    for path in paths:
        check_run_dir(path)
    trained, start = set(), 0
    if sum(load_run(path) is None for path in paths) >= 2:
        device = resolve_device(device)
        if data is None:
            first = configs[0]
            data = data_module.load_data(first.dataset, root=data_root, n_train=first.n_train, n_test=first.n_test,
                                         seed=first.subset_seed)
        with contextlib.ExitStack() as locks:
            held = set()
            for path in sorted(paths):  # one order for every process; a held lock is not waited for
                path.mkdir(parents=True, exist_ok=True)
                if (lock := try_run_lock(path)) is not None:
                    locks.callback(lock.release)
                    held.add(path)
            todo = [(c, p) for c, p in zip(configs, paths) if p in held and load_run(p) is None]
            epochs = [_checkpoint_epoch(p) for _, p in todo]
            start = max(set(epochs), key=lambda e: (epochs.count(e), -e)) if epochs else 0
            todo = [(c, p) for (c, p), e in zip(todo, epochs) if e == start]
            if len(todo) >= 2:
                _train_stack(todo, data, device, start, channels_last, cuda_graphs)
                trained = {p for _, p in todo}
    return [replace(load_run(p), trained_from=start) if p in trained else
            get_or_train(c, runs_dir, device=device, data_root=data_root, data=data, channels_last=channels_last,
                         cuda_graphs=cuda_graphs, progress=False, lock_timeout=lock_timeout)
            for c, p in zip(configs, paths)]


def _train_stack(todo: list[tuple[TrainConfig, Path]], data, device, start: int, channels_last: bool,
                 cuda_graphs: bool) -> None:
    """`train_stacked`'s training of the locked runs `todo`, all stopped at epoch `start`."""
    for config, path in todo:
        begin_attempt(config, path)
        record_machine(path, start, device, stacked_runs=len(todo))
    failed: set[Path] = set()

    def saver(config, path):
        save = epoch_saver(config, path)

        def save_or_record(*args):
            try:
                save(*args)
            except Exception as err:
                mark_failed(path, err)
                failed.add(path)
                raise
        return save_or_record

    states = [resume_state(config, path, data, device) for config, path in todo]
    try:
        networks, histories = stacked.fit(
            [c for c, _ in todo], data, device, *map(list, zip(*states)),
            hooks=[epoch_hooks(c, data) for c, _ in todo], saves=[saver(c, p) for c, p in todo],
            channels_last=channels_last, cuda_graphs=cuda_graphs)
    except Exception as err:
        if not failed:  # the stack failed as a whole (out of memory, ...): every run says so
            for _, path in todo:
                mark_failed(path, err)
        raise
    for (_, path), network, history in zip(todo, networks, histories):
        finish_run(path, network, history, data, device)


def stack_groups(configs: list[TrainConfig], runs_dir=None, max_runs: int = 8) -> list[list[TrainConfig]]:
    """The runs of `configs` not yet finished that `train_stacked` can train together: grouped by
    what they share (`stacked.stack_key`) and by the epoch they stopped at, cut into stacks of at
    most `max_runs`; runs left alone (no partner, FGSM, batch norm) are in no group."""
    groups: dict[tuple, list] = {}
    for config in configs:
        path = run_path(config, runs_dir)
        key = stacked.stack_key(config)
        if key is not None and not (path / "metrics.json").exists():
            groups.setdefault((key, _checkpoint_epoch(path)), []).append(config)
    stacks = []
    for group in groups.values():
        size = -(-len(group) // -(-len(group) // max(max_runs, 1)))  # stacks of even size, none over max_runs
        stacks += [group[i:i + size] for i in range(0, len(group), size)]
    return [stack for stack in stacks if len(stack) > 1]


def _run_status(path: Path) -> dict:
    """`arreg runs`' status of one run: done, failed (the reason), training (its lock is held),
    interrupted (resumes), or broken (why); and its checkpoint: 'epoch N', 'none' or 'corrupt'."""
    try:
        check_run_dir(path)
        stored_config(path)
        if load_run(path) is not None:
            return {"status": "done", **read_json(path / "metrics.json")}
    except (BrokenRunError, OSError) as err:
        return {"status": f"broken: {err}"}
    if (path / "failed.json").exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return {"status": f"failed: {read_json(path / 'failed.json')['reason']}"}
    epoch = _checkpoint_epoch(path)
    lock = FileLock(str(path / ".lock"))
    try:
        lock.acquire(timeout=0)
        lock.release()
    except Timeout:
        return {"status": f"training ({_lock_owner(path)}), epoch {epoch} done"}
    except OSError:
        pass
    return {"status": f"interrupted after epoch {epoch}: rerun to resume"}


def list_runs(runs_dir=None) -> pd.DataFrame:
    """Every run under `runs_dir` as a table: config fields, status, checkpoint and metrics."""
    rows = []
    for cfg in sorted(Path(runs_dir or default_runs_dir()).glob("*/config.json")):
        path = cfg.parent
        try:
            fields = read_json(cfg)
        except (OSError, ValueError):
            fields = {}
        row = {"run": path.name, **(fields if isinstance(fields, dict) else {}), **_run_status(path),
               "checkpoint": checkpoint_status(path)}
        rows.append(row)
    return pd.DataFrame(rows)


PREPARE_LOG = "prepare_log.jsonl"  # the store's build log (executors.Progress), beside its runs


def is_run_store(folder: Path) -> bool:
    """Whether `folder` holds only run directories this project wrote, its build log and manifest
    (or nothing): the only kind of folder `arreg book --fresh` deletes."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    for entry in folder.iterdir():
        if entry.name in (PREPARE_LOG, manifest.MANIFEST, manifest.LOCK) and entry.is_file() and not entry.is_symlink():
            continue
        if entry.is_symlink() or not entry.is_dir() or not RUN_NAME.match(entry.name):
            return False
        if not all(RUN_FILES.match(p.name) and not p.is_symlink() for p in entry.iterdir()):
            return False
        try:
            stored_config(entry)
        except (BrokenRunError, OSError):
            return False
    return True


def _legacy_key(fields: dict) -> str:
    """The key before canonicalisation: the hash of config.json exactly as it was written."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def migrate_keys(runs_dir=None) -> list[tuple[str, str]]:
    """Rename the run directories named by the old key (hash of config.json as written, so that
    spectral_norm 1.0 and 1 were two runs) to the canonical key, with everything in them. Only a
    directory whose config.json hashes to its name's old key moves (an edited one stays, and is
    reported by `arreg runs`). Returns the (old, new) names."""
    moved = []
    for cfg in sorted(Path(runs_dir or default_runs_dir()).glob("*/config.json")):
        path, name = cfg.parent, RUN_NAME.match(cfg.parent.name)
        try:
            fields = read_json(cfg)
            config = TrainConfig.from_dict(fields)
        except (OSError, ValueError, TypeError):
            continue
        target = path.with_name(run_name(config))
        if name and target != path and name["key"] == _legacy_key(fields) and not target.exists():
            manifest.move_run(path.parent, path.name, target.name)
            moved.append((path.name, target.name))
    return moved


def get_or_train_all(configs, runs_dir=None, **kwargs) -> list[Run]:
    """`get_or_train` for each config in turn (each trains only if missing)."""
    return [get_or_train(c, runs_dir, **kwargs) for c in configs]


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: its config fields, metrics, `run` (the directory name) and `path`."""
    return pd.DataFrame([{"run": r.path.name, **r.config.to_dict(), **r.metrics, "path": str(r.path)} for r in runs])
