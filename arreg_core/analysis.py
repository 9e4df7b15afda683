"""The paper's analysis instruments for one run, stored as small artifacts next to it.

    <run>/analysis/<piece>-<key>.npz    the piece's arrays + a "meta" entry (JSON string)
    <run>/analysis/<piece>-<key>.json   the same meta (params, summary), for reading and diffs

`key` hashes the piece's name, version and result-changing params, so changing one parameter
of one piece recomputes only that piece; a stored artifact is reused unless the run's
checkpoint changed since (its sha256 is recorded), and only once it matches the store's manifest
(arreg_core.manifest), with or without a checkpoint. Pieces:

  margins         margins (Definition 3), true-class probabilities, cross entropies, labels and
                  predictions of the training set (no augmentation) and the test set (Fig. 4, 5a/b)
  spectrum        per-layer singular-value std/min/max/n and all singular values (Fig. 5c/d, B.2)
  loss_variation  maximal loss variation under l-inf PGD of strength eps 1, 2, 4 on the 0-255 scale
                  (B.5, Fig. 8, Table 1)
  bound           the parts of eq. (5): sigma^i_min, min row distance of W^L, the instance-space
                  margin of every example of a split, and u_min (Theorem 3.1)

Artifacts load back with `load_artifact` without the checkpoint. Two processes analysing the
same piece of the same run both compute it; the atomic writes keep the file whole.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from . import data as data_module
from . import manifest
from .bound import (DEFAULT_SEARCH, eq5_summary, instance_space_margin, last_layer, min_row_distance,
                    smallest_singular_values)
from .device import prepare_device
from .evaluate import predict_logits
from .loss_variation import DEFAULT_EPS, loss_variation
from .io import read_npz
from .margins import margin, margin_stats, per_example_loss, true_class_probability
from .models import Normalize
from .runs import TIMING_METRICS, Run, atomic_write_json, load_run, read_json, store_fix
from .spectrum import layer_singular_values

__all__ = ["PIECES", "DEFAULT_PARAMS", "COMPUTE", "analyze", "load_artifact", "artifact_path", "piece_params"]

PIECES = ("margins", "spectrum", "loss_variation", "bound")
DEFAULT_PARAMS = {
    "margins": {"t": 1.0, "batch_size": 500},
    "spectrum": {"values_dtype": "float16"},  # float16 | float32 | none (per-layer stats only)
    # eps: the attack strengths, 0-255 scale like every eps a user gives (bound's r_max is an l2
    # radius in [0, 1] pixels: Definition 6's distance, no attack strength)
    "loss_variation": {"eps": list(DEFAULT_EPS), "steps": 10, "step_frac": 0.25, "random_start": True,
                       "seed": 0, "split": "test", "batch_size": 500},
    "bound": {"split": "test", "n_examples": None, **DEFAULT_SEARCH, "batch_size": 250},
}
VERSIONS = {"margins": 1, "spectrum": 1, "loss_variation": 1, "bound": 1}  # bump when a result changes
UNKEYED = {"batch_size"}  # params that do not change results


def piece_params(piece: str, params: dict | None = None) -> dict:
    """The piece's defaults updated with `params` (one piece's overrides); unknown names raise."""
    if piece not in PIECES:
        raise ValueError(f"unknown analysis piece {piece!r}; choose from {', '.join(PIECES)}")
    params = dict(params or {})
    unknown = set(params) - set(DEFAULT_PARAMS[piece])
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)} for piece {piece!r}; "
                         f"valid: {', '.join(sorted(DEFAULT_PARAMS[piece]))}")
    return {**DEFAULT_PARAMS[piece], **params}


def _key(piece: str, params: dict) -> str:
    keyed = {k: v for k, v in params.items() if k not in UNKEYED}
    blob = json.dumps({"piece": piece, "version": VERSIONS[piece], "params": keyed}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def artifact_path(run_path, piece: str, params: dict | None = None) -> Path:
    """Where the artifact of `piece` with these params lives (.npz)."""
    full = piece_params(piece, params)
    return Path(run_path) / "analysis" / f"{piece}-{_key(piece, full)}.npz"


def _checkpoint_sha(run_path: Path) -> str | None:
    record = run_path / "checkpoint.json"
    return read_json(record)["sha256"] if record.exists() else None


def _jsonable(obj):
    """Summaries as plain JSON: numpy scalars/arrays to Python, non-finite floats to strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (np.floating, float)):
        obj = float(obj)
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write(path: Path, arrays: dict, meta: dict) -> None:
    """The artifact (sealed in the store's manifest) and its meta beside it as JSON, for reading."""
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    manifest.write_bytes(path.parents[1], f"analysis/{path.name}", buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), meta)


def _read(path: Path) -> dict:
    """The arrays of an artifact and its meta; a file that does not parse is one error naming it."""
    run = Path(path).parents[1]
    out = read_npz(path, store_fix(run, "analysis/"))
    try:
        out["meta"] = json.loads(str(out["meta"]))
    except (KeyError, ValueError):
        raise manifest.TamperedError(f"{path} has no readable meta: it is not an artifact this project wrote; "
                                     f"{store_fix(run, 'analysis/')}") from None
    return out


def _read_checked(path: Path) -> dict:
    """`_read`, once the artifact matches the store's manifest (manifest.TamperedError otherwise)."""
    run = Path(path).parents[1]
    name = f"analysis/{Path(path).name}"
    manifest.check(run, name, store_fix(run, name))
    return _read(path)


def result_differences(path: Path, other: Path) -> tuple[list[str], int]:
    """What differs between two finished runs of one config (empty: the same result), and how many
    arrays of their .npz artifacts were compared: the metrics but TIMING_METRICS, every array of the first run's
    artifacts bit for bit, and their meta but the checkpoint's sha256 (a checkpoint stores each
    epoch's seconds). Training on the CPU is deterministic, so a rebuild, a resumed run or another
    executor gives none."""
    new, old = read_json(Path(path) / "metrics.json"), read_json(Path(other) / "metrics.json")
    differences = [f"metric {k}" for k in sorted(set(new) | set(old))
                   if k not in TIMING_METRICS and new.get(k) != old.get(k)]
    arrays = 0
    for artifact in sorted((Path(path) / "analysis").glob("*.npz")):
        twin = Path(other) / "analysis" / artifact.name
        if not twin.is_file():
            differences.append(f"missing {artifact.name}")
            continue
        a, b = _read(artifact), _read(twin)
        differences += [f"{artifact.name}:{k} missing" for k in sorted(set(a) ^ set(b))]
        arrays += len(set(a) & set(b))  # the meta is an array of the .npz too
        for k in sorted(set(a) & set(b) - {"meta"}):
            if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"):
                differences.append(f"{artifact.name}:{k}")
        if {**a["meta"], "checkpoint_sha256": None} != {**b["meta"], "checkpoint_sha256": None}:
            differences.append(f"{artifact.name}:meta")
    return differences, arrays


def load_artifact(run_path, piece: str, params: dict | None = None) -> dict:
    """The stored arrays of one piece (numpy) and its "meta" (params, summary); no checkpoint
    needed. `params` are the overrides the artifact was computed with (None: the defaults)."""
    path = artifact_path(run_path, piece, params)
    if not path.exists():
        raise FileNotFoundError(f"no {piece} artifact with these params at {path}: "
                                f"compute it with `arreg analyze {run_path} --pieces {piece}`")
    return _read_checked(path)


# ----------------------------------------------------------------------------- what is computed

@dataclasses.dataclass
class Context:
    """What a piece computes from, loaded on first use: the run's model and data."""

    run: Run
    device: torch.device
    data_root: str | None = None
    given_data: data_module.ImageData | None = None

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        return self.run.load_model(self.device)

    @functools.cached_property
    def data(self) -> data_module.ImageData:
        if self.given_data is not None:
            return self.given_data
        c = self.run.config
        return data_module.load_data(c.dataset, root=self.data_root, n_train=c.n_train, n_test=c.n_test,
                                     seed=c.subset_seed)

    @property
    def input_size(self) -> int:
        if self.given_data is not None:
            return self.given_data.image_size
        return data_module.TINY_SIZE if self.run.config.dataset == "tinyimagenet" else 32

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return (self.data.x_train, self.data.y_train) if name == "train" else (self.data.x_test, self.data.y_test)


def _labels(y: torch.Tensor) -> np.ndarray:
    return y.cpu().numpy().astype(np.int16)


def compute_margins(ctx: Context, p: dict) -> tuple[dict, dict]:
    """Section 4.2.1: per example of both splits (test view, no augmentation)."""
    arrays, summary = {}, {}
    for split in ("train", "test"):
        x, y = ctx.split(split)
        logits = predict_logits(ctx.model, x, transform=ctx.data.test_transform, batch_size=p["batch_size"],
                                device=ctx.device)
        y = y.cpu()
        m, prob, loss = margin(logits, y), true_class_probability(logits, y), per_example_loss(logits, y)
        arrays.update({f"{split}_margin": m.numpy().astype(np.float32), f"{split}_prob": prob.numpy(),
                       f"{split}_loss": loss.numpy(), f"{split}_label": _labels(y),
                       f"{split}_pred": _labels(logits.argmax(1))})
        summary[split] = {"margin": margin_stats(m, p["t"]), "accuracy": float((logits.argmax(1) == y).float().mean()),
                          "mean_loss": float(loss.double().mean()), "mean_prob": float(prob.double().mean())}
    return arrays, summary


def compute_spectrum(ctx: Context, p: dict) -> tuple[dict, dict]:
    """Section 4.2.2 / B.2: per-layer singular-value stats and (unless values_dtype is none) all
    values, concatenated in layer order; layer i's are values[offsets[i]:offsets[i + 1]]."""
    layers = layer_singular_values(ctx.model, ctx.input_size)
    arrays = {"name": np.array([r["name"] for r in layers]), "kind": np.array([r["kind"] for r in layers]),
              "stride": np.array([r["stride"] or 0 for r in layers], dtype=np.int16),
              "input_hw": np.array([r["input_hw"] or (0, 0) for r in layers], dtype=np.int16),
              "n": np.array([r["n"] for r in layers], dtype=np.int64),
              "std": np.array([r["std"] for r in layers]), "min": np.array([r["min"] for r in layers]),
              "max": np.array([r["max"] for r in layers])}
    arrays["offsets"] = np.concatenate([[0], np.cumsum(arrays["n"])])
    if p["values_dtype"] != "none":
        if p["values_dtype"] not in ("float16", "float32"):
            raise ValueError(f"values_dtype must be float16, float32 or none, got {p['values_dtype']!r}")
        arrays["values"] = torch.cat([r["singular_values"] for r in layers]).numpy().astype(p["values_dtype"])
    top = arrays["max"]
    summary = {"n_layers": len(layers), "std": arrays["std"], "max": top,
               "log_spectral_complexity": float(np.sum(np.log(top))) if np.all(top > 0) else -math.inf}
    return arrays, summary


def compute_loss_variation(ctx: Context, p: dict) -> tuple[dict, dict]:
    """Appendix B.5 on one split (default: test), every example."""
    x, y = ctx.split(p["split"])
    out = loss_variation(ctx.model, x, y, p["eps"], steps=p["steps"], step_frac=p["step_frac"],
                         random_start=p["random_start"], seed=p["seed"], transform=ctx.data.test_transform,
                         batch_size=p["batch_size"], device=ctx.device)
    arrays = {**out, "label": _labels(y)}
    return arrays, {"eps": out["eps"], "mean": out["mean"], "std": out["std"]}


def _normalization_sigma_min(model) -> float:
    """sigma_min of the model's fixed input normalisation, 1 / max_c std_c (1 if it has none):
    the factor to rescale v from [0, 1] pixels to normalised inputs, not part of eq. (5)."""
    norm = [m for m in model.modules() if isinstance(m, Normalize)]
    return float(1.0 / norm[0].std.max()) if norm else 1.0


def compute_bound(ctx: Context, p: dict) -> tuple[dict, dict]:
    """Eq. (5) on one split (default: test; the first n_examples, None: all)."""
    x, y = ctx.split(p["split"])
    n = len(y) if p["n_examples"] is None else min(int(p["n_examples"]), len(y))
    x, y = x[:n], y[:n]
    model = ctx.model.eval()
    sig = smallest_singular_values(model, ctx.input_size)
    row_dist, pair = min_row_distance(last_layer(model).weight)
    parts = {k: [] for k in ("radius", "lo", "hi", "pred", "margin")}
    for xb, yb in data_module.iterate_batches(x, y, p["batch_size"], device=ctx.device):
        xb = data_module.test_view(xb, ctx.data.test_transform)
        out = instance_space_margin(model, xb, None, r_max=p["r_max"], steps=p["steps"],
                                    bisect_steps=p["bisect_steps"], rtol=p["rtol"], n_targets=p["n_targets"])
        with torch.no_grad():
            out["margin"] = margin(model(xb), yb)
        for k in parts:
            parts[k].append(out[k].detach().cpu())
    cat = {k: torch.cat(v) if v else torch.zeros(0) for k, v in parts.items()}
    correct = cat["pred"] == y.cpu()
    summary = eq5_summary(row_dist, sig["log_prod_sigma_min"], cat["radius"].numpy(), cat["margin"].numpy(),
                          correct.numpy(), sig["log_prod_sigma_min_nonzero"])
    summary.update(row_pair=pair, n_examples=n, normalization_sigma_min=_normalization_sigma_min(model))
    arrays = {"layer_name": np.array(sig["names"]), "sigma_min": sig["sigma_min"],
              "sigma_min_nonzero": sig["sigma_min_nonzero"], "label": _labels(y),
              "pred": _labels(cat["pred"]), "margin": cat["margin"].numpy().astype(np.float32),
              **{k: cat[k].numpy().astype(np.float32) for k in ("radius", "lo", "hi")}}
    return arrays, summary


COMPUTE = {"margins": compute_margins, "spectrum": compute_spectrum, "loss_variation": compute_loss_variation,
           "bound": compute_bound}


# ----------------------------------------------------------------------------- one call per run

def analyze(run_or_path, pieces=PIECES, params: dict | None = None, data: data_module.ImageData | None = None,
            device="auto", data_root=None) -> dict:
    """Compute the missing artifacts of `pieces` for a finished run and store them (see the
    module docstring). `params` maps a piece to overrides of its DEFAULT_PARAMS. `data`, when
    given, must be the run's data (it is not checked); else it is loaded from the run's config.
    Returns {piece: {"path", "computed" (False: reused), "summary"}}."""
    run = run_or_path if isinstance(run_or_path, Run) else load_run(Path(run_or_path))
    if run is None:
        raise FileNotFoundError(f"{run_or_path} is not a finished run (no metrics.json)")
    params = params or {}
    unknown = set(params) - set(PIECES)
    if unknown:
        raise ValueError(f"params for unknown pieces {sorted(unknown)}; pieces: {', '.join(PIECES)}")
    ctx = Context(run, prepare_device(device), data_root, data)
    sha = _checkpoint_sha(run.path)
    result = {}
    for piece in pieces:
        full = piece_params(piece, params.get(piece))
        path = artifact_path(run.path, piece, params.get(piece))
        if path.exists():
            meta = _read_checked(path)["meta"]
            if sha is None or meta.get("checkpoint_sha256") == sha:
                result[piece] = {"path": path, "computed": False, "summary": meta["summary"]}
                continue
        arrays, summary = COMPUTE[piece](ctx, full)
        meta = _jsonable({"piece": piece, "version": VERSIONS[piece], "params": full, "run": run.path.name,
                          "checkpoint_sha256": sha, "summary": summary})
        _write(path, arrays, meta)
        result[piece] = {"path": path, "computed": True, "summary": meta["summary"]}
    return result
