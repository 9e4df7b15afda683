"""The run store: one directory per trained network, keyed by the hash of its full config.

    <runs_dir>/<arch>-<dataset>-<method>-eps<eps>-<key>/
        config.json      the TrainConfig
        checkpoint.pt    model, optimizer, scheduler and history after the last finished epoch
        checkpoint.json  its epoch and sha256 (written after it: a checkpoint without a matching
                         record is an unfinished write and is never used)
        history.json     one row per epoch
        metrics.json     the paper's metrics of the finished run (evaluate.evaluate)

`get_or_train` trains only what is missing, resumes an interrupted run from its last finished
epoch, writes every file atomically (temp file + rename), and holds a file lock on the run so
two processes never train it twice. Checkpoints load with torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock

from . import data as data_module
from .evaluate import evaluate
from .train import TrainConfig, build_model_for, build_optimizer, fit, prepare_device


class CorruptCheckpointError(RuntimeError):
    """A checkpoint whose bytes do not match the sha256 recorded when it was written."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("ARREG_RUNS", "runs"))


def run_key(config: TrainConfig) -> str:
    """Stable 12-hex-digit key: sha256 of the config's canonical JSON. `precision` counts only when
    it is not the default fp32, so the keys of runs stored before the field existed stay valid."""
    fields = config.to_dict()
    if fields["precision"] == "fp32":
        del fields["precision"]
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_name(config: TrainConfig) -> str:
    eps = f"{config.eps:g}"
    return f"{config.arch}-{config.dataset}-{config.method}-eps{eps}-{run_key(config)}"


def run_path(config: TrainConfig, runs_dir=None) -> Path:
    return Path(runs_dir or default_runs_dir()) / run_name(config)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def save_checkpoint(path: Path, model, optimizer, scheduler, history: list) -> None:
    """checkpoint.pt, then checkpoint.json with its epoch and sha256."""
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "history": history}, buf)
    payload = buf.getvalue()
    atomic_write_bytes(path / "checkpoint.pt", payload)
    atomic_write_json(path / "checkpoint.json", {"epoch": len(history), "sha256": hashlib.sha256(payload).hexdigest()})
    atomic_write_json(path / "history.json", history)


def load_checkpoint(path: Path, map_location="cpu") -> dict | None:
    """The last finished checkpoint of the run at `path`, or None if it has none.
    Raises CorruptCheckpointError if the file does not match its recorded sha256."""
    ckpt, record = path / "checkpoint.pt", path / "checkpoint.json"
    if not (ckpt.exists() and record.exists()):
        return None
    expected = read_json(record)["sha256"]
    payload = ckpt.read_bytes()
    if hashlib.sha256(payload).hexdigest() != expected:
        raise CorruptCheckpointError(
            f"{ckpt} does not match the sha256 recorded in {record}: delete both files to retrain the run from scratch")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)


@dataclass
class Run:
    """A finished run: where it lives, its config, metrics and per-epoch history."""

    path: Path
    config: TrainConfig
    metrics: dict
    history: list

    def load_model(self, device="auto") -> torch.nn.Module:
        """The trained network, in eval mode, on `device`."""
        from .models import build_model

        ckpt = load_checkpoint(self.path)
        if ckpt is None:
            raise FileNotFoundError(f"{self.path} has no checkpoint (artifacts only): retrain it with "
                                    f"`arreg train --config {self.path / 'config.json'}`")
        state = ckpt["model"]
        num_classes = next(v.shape[0] for k, v in state.items() if k.endswith("fc.weight"))
        model = build_model(self.config.arch, num_classes, self.config.width, dataset=self.config.dataset)
        model.load_state_dict(state)
        return model.to(prepare_device(device)).eval()


def load_run(path: Path) -> Run | None:
    """The finished run at `path`, or None if it has not finished."""
    path = Path(path)
    if not (path / "metrics.json").exists():
        return None
    history = read_json(path / "history.json") if (path / "history.json").exists() else []
    return Run(path, TrainConfig.from_dict(read_json(path / "config.json")), read_json(path / "metrics.json"), history)


def epoch_hooks(config: TrainConfig, data: data_module.ImageData) -> list:
    """End-of-epoch hooks a config asks for: spectral clipping (appendix B.4.2)."""
    if config.spectral_norm is None:
        return []
    from .spectral_clip import spectral_clip_hook

    return [spectral_clip_hook(config.spectral_norm, data.image_size)]


def get_or_train(config: TrainConfig, runs_dir=None, *, device="auto", data_root=None,
                 data: data_module.ImageData | None = None, channels_last: bool = False,
                 compile: bool = False, progress: bool = True) -> Run:
    """The finished run of `config`: loaded if stored, else trained (resuming from the last
    finished epoch of an interrupted attempt), evaluated and stored."""
    path = run_path(config, runs_dir)
    done = load_run(path)
    if done is not None:
        return done
    if data is None:  # before creating anything, so that missing data leaves no trace
        data = data_module.load_data(config.dataset, root=data_root, n_train=config.n_train,
                                     n_test=config.n_test, seed=config.subset_seed)
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path / ".lock")):
        done = load_run(path)  # another process may have finished it while we waited
        if done is not None:
            return done
        if (path / "config.json").exists() and TrainConfig.from_dict(read_json(path / "config.json")) != config:
            raise RuntimeError(f"{path} holds another config (hash collision?): move it away and retry")
        atomic_write_json(path / "config.json", config.to_dict())
        device = prepare_device(device)
        model = build_model_for(config, data).to(device)
        optimizer, scheduler = build_optimizer(config, model)
        history: list = []
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            history = ckpt["history"]
        model, history = fit(config, data, device, model=model, optimizer=optimizer, scheduler=scheduler,
                             start_epoch=len(history), history=history, on_epoch_end=epoch_hooks(config, data),
                             save_checkpoint=lambda *state: save_checkpoint(path, *state),
                             channels_last=channels_last, compile=compile, progress=progress)
        metrics = evaluate(model, data, device=device)
        metrics["epochs_trained"] = len(history)
        metrics["train_seconds"] = sum(row["seconds"] for row in history)
        atomic_write_json(path / "metrics.json", metrics)
    return load_run(path)


def list_runs(runs_dir=None) -> pd.DataFrame:
    """Every run under `runs_dir` as a table: config fields, status and metrics."""
    rows = []
    for cfg in sorted(Path(runs_dir or default_runs_dir()).glob("*/config.json")):
        path = cfg.parent
        row = {"run": path.name, **read_json(cfg)}
        if (path / "metrics.json").exists():
            row.update(status="done", **read_json(path / "metrics.json"))
        elif (path / "checkpoint.json").exists():
            row.update(status=f"epoch {read_json(path / 'checkpoint.json')['epoch']}")
        else:
            row.update(status="started")
        rows.append(row)
    return pd.DataFrame(rows)


def get_or_train_all(configs, runs_dir=None, **kwargs) -> list[Run]:
    """`get_or_train` for each config in turn (each trains only if missing)."""
    return [get_or_train(c, runs_dir, **kwargs) for c in configs]


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: its config fields, metrics, `run` (the directory name) and `path`."""
    return pd.DataFrame([{"run": r.path.name, **r.config.to_dict(), **r.metrics, "path": str(r.path)} for r in runs])
