"""Moving a run store between machines in parts of bounded size.

A lent GPU machine hands back at most 8 files of 16 MiB each, so the store trained there comes
back packed: `pack_store` writes every run (config, history, metrics, the checkpoint its record
names, analysis artifacts) and the build log as one gzip'd tar cut into `<prefix>.partNN` files,
with a list of every file's sha256 (and the store's own manifest); `import_parts` checks the
parts, unpacks them beside the destination, verifies every file against that list and every run as the store does (config
hashing to its key, checkpoint matching its recorded sha256, metrics complete), and only then
moves each run in. A run the destination holds further along is kept; two finished runs of one
key whose metrics differ stop the import. Nothing is written into the store before the whole
archive has been verified.

    arreg export-runs --runs-dir results/gpu/runs --out $OUT/gpu-runs     # on the GPU machine
    arreg import-runs gpu-runs.part00 gpu-runs.part01 --runs-dir results/gpu/runs
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import tempfile
from pathlib import Path

from . import manifest
from .io import atomic_write_bytes
from .runs import (PREPARE_LOG, RUN_NAME, TIMING_METRICS, RunError, load_checkpoint, load_run, read_json,
                   recorded_checkpoint, remove_partial_writes, run_lock, stored_config)

PART_MIB = 15  # under the 16 MiB a lent machine returns per file
CHECKSUMS = "checksums.json"  # the archive's own list of every file's sha256
PART = re.compile(r"\.part(\d{2})$")
RUN_KEEPS = re.compile(r"^(?:config|history|metrics|machine|checkpoint)\.json$")
ANALYSIS_FILE = re.compile(r"^[\w.-]+\.(?:npz|json)$")


class TransferError(RunError):
    """The parts cannot be imported (missing, corrupt, or in conflict with the store); one line."""


class _Parts(io.RawIOBase):
    """A write-only stream cut into files `<prefix>.part00`, `.part01`, ... of at most `size` bytes."""

    def __init__(self, prefix: Path, size: int):
        self.prefix, self.size, self.paths, self.file, self.used = prefix, size, [], None, 0

    def writable(self):
        return True

    def write(self, data) -> int:
        data = memoryview(data)
        done = 0
        while done < len(data):
            if self.file is None or self.used == self.size:
                self._next()
            n = min(self.size - self.used, len(data) - done)
            self.file.write(data[done:done + n])
            self.used += n
            done += n
        return done

    def _next(self):
        if self.file is not None:
            self.file.close()
        path = Path(f"{self.prefix}.part{len(self.paths):02d}")
        self.paths.append(path)
        self.file, self.used = open(path, "wb"), 0

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None
        super().close()


def store_files(runs_dir: Path) -> list[Path]:
    """The files of a store that travel, relative to it: per run its config, history, metrics,
    machine record, checkpoint record and the checkpoint it names, and its analysis artifacts; the
    store's manifest and build log. Locks, temp files, failed.json and checkpoints the record does
    not name stay."""
    runs_dir = Path(runs_dir)
    files = [Path(name) for name in (manifest.MANIFEST, PREPARE_LOG) if (runs_dir / name).is_file()]
    for run in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink() and RUN_NAME.match(p.name)):
        named = recorded_checkpoint(run)
        for p in sorted(run.iterdir()):
            if p.is_symlink() or not p.is_file():
                continue
            if RUN_KEEPS.match(p.name) or p.name == named:
                files.append(p.relative_to(runs_dir))
        analysis = run / "analysis"
        if analysis.is_dir() and not analysis.is_symlink():
            files += [p.relative_to(runs_dir) for p in sorted(analysis.iterdir())
                      if p.is_file() and not p.is_symlink() and ANALYSIS_FILE.match(p.name)]
    return files


def pack_store(runs_dir, prefix, part_mib: float = PART_MIB) -> list[Path]:
    """Pack the store at `runs_dir` into `<prefix>.partNN` files of at most `part_mib` MiB each
    (the list of every file's sha256 first). Returns the parts written."""
    runs_dir, prefix = Path(runs_dir), Path(prefix)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no run store at {runs_dir}: train something first (arreg prepare)")
    manifest.verify_store(runs_dir, lambda run, name: f"retrain or re-analyse {run.name} before packing it")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for old in prefix.parent.glob(prefix.name + ".part*"):
        old.unlink()
    files = store_files(runs_dir)
    checksums = json.dumps({str(f): manifest.file_sha256(runs_dir / f) for f in files}, indent=1,
                           sort_keys=True).encode()
    parts = _Parts(prefix, int(part_mib * 2**20))
    with tarfile.open(fileobj=parts, mode="w|gz") as tar:
        info = tarfile.TarInfo(CHECKSUMS)
        info.size = len(checksums)
        tar.addfile(info, io.BytesIO(checksums))
        for f in files:
            tar.add(runs_dir / f, arcname=str(f), recursive=False)
    parts.close()
    return parts.paths


def _ordered(parts) -> list[Path]:
    """The parts sorted by number, checked complete from part00 without gaps."""
    numbered = {}
    for p in map(Path, parts):
        m = PART.search(p.name)
        if not m or not p.is_file():
            raise TransferError(f"{p} is not a part written by `arreg export-runs` (<prefix>.partNN)")
        numbered[int(m[1])] = p
    missing = sorted(set(range(max(numbered) + 1)) - set(numbered))
    if missing:
        raise TransferError(f"part(s) {', '.join(f'{n:02d}' for n in missing)} missing: pass every <prefix>.partNN")
    return [numbered[n] for n in sorted(numbered)]


class _Joined(io.RawIOBase):
    def __init__(self, paths):
        self.files = [open(p, "rb") for p in paths]

    def readable(self):
        return True

    def readinto(self, buf) -> int:
        while self.files:
            n = self.files[0].readinto(buf)
            if n:
                return n
            self.files.pop(0).close()
        return 0


def _unpack(parts: list[Path], into: Path) -> dict:
    try:
        with tarfile.open(fileobj=io.BufferedReader(_Joined(parts)), mode="r|gz") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise TransferError(f"the parts {parts[0].name}.. do not unpack ({' '.join(str(err).split())}): "
                           f"fetch them again, all of them") from None
    listing = into / CHECKSUMS
    if not listing.is_file():
        raise TransferError(f"{parts[0]}: no {CHECKSUMS} inside: not written by `arreg export-runs`")
    expected = read_json(listing)
    for name, sha in expected.items():
        if not (into / name).is_file() or manifest.file_sha256(into / name) != sha:
            raise TransferError(f"{name} in the parts does not match its sha256 in the archive's checksums: fetch the parts again")
    extra = {str(p.relative_to(into)) for p in into.rglob("*") if p.is_file()} - set(expected) - {CHECKSUMS, manifest.LOCK}
    if extra:
        raise TransferError(f"{sorted(extra)[0]} in the parts is not in their checksums: not written by `arreg export-runs`")
    return expected


def _verify_run(path: Path) -> tuple[int, dict | None]:
    """(epochs done, metrics or None) of an unpacked run, checked as the store checks its own."""
    stored_config(path)
    ckpt = load_checkpoint(path)
    run = load_run(path)
    epochs = len(ckpt["history"]) if ckpt else 0
    if run is not None:
        epochs = max(epochs, int(run.metrics["epochs_trained"]))
    return epochs, (run.metrics if run else None)


def _state(path: Path) -> tuple[int, dict | None]:
    try:
        return _verify_run(path)
    except (RunError, OSError, manifest.TamperedError) as err:
        raise TransferError(f"{path} in the store cannot be trusted ({err}): repair it before importing over it") from None


def _same_file(a: Path, b: Path) -> bool:
    return b.is_file() and manifest.file_sha256(a) == manifest.file_sha256(b)


def _same_result(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING_METRICS} == {k: v for k, v in b.items() if k not in TIMING_METRICS}


def _move_in(source: Path, dest: Path) -> None:
    """Files of the unpacked run `source` into the store's run `dest`, in the store's order: the
    checkpoint, then its record, then the rest (the files the manifest seals recorded in the
    store's manifest as they are written); checkpoints the new record does not name go."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    first = [p for p in files if p.suffix == ".pt"] + [p for p in files if p.name == "checkpoint.json"]
    sealed = set(manifest.sealed_files(source))
    for p in first + [p for p in files if p not in first]:
        name = str(p.relative_to(source))
        if name in sealed:
            manifest.write_bytes(dest, name, p.read_bytes())
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(dest / name, p.read_bytes())
    remove_partial_writes(dest)


def import_parts(parts, runs_dir) -> list[tuple[str, str]]:
    """Unpack and verify the parts of `pack_store`, then bring each run into the store at
    `runs_dir`: "added", "updated" (the store's copy was behind, or lacked artifacts),
    "unchanged" or "kept" (the store's copy is further along). Returns (run, what) pairs."""
    ordered = _ordered(parts)
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    done = []
    with tempfile.TemporaryDirectory(dir=runs_dir.parent, prefix=".arreg-import-") as tmp:
        tmp = Path(tmp)
        _unpack(ordered, tmp)
        runs = sorted(p for p in tmp.iterdir() if p.is_dir())
        plan = []
        for run in runs:
            if not RUN_NAME.match(run.name):
                raise TransferError(f"{run.name} in the parts is not a run directory")
            try:
                epochs, metrics = _verify_run(run)
            except (RunError, OSError, manifest.TamperedError) as err:
                raise TransferError(f"run {run.name} in the parts does not verify: {err}") from None
            dest = runs_dir / run.name
            if dest.is_symlink():
                raise TransferError(f"{dest} is a symbolic link: the import writes only into the store's own folders")
            have, have_metrics = _state(dest) if dest.exists() else (-1, None)
            if metrics and have_metrics and not _same_result(metrics, have_metrics):
                raise TransferError(f"{run.name}: the store's finished run and the imported one differ "
                                   f"(test_acc {have_metrics['test_acc']:.2f} vs {metrics['test_acc']:.2f}): "
                                   f"keep one, delete the other's folder, and import again")
            plan.append((run, dest, epochs, have))
        for run, dest, epochs, have in plan:
            if epochs < have:
                done.append((run.name, "kept"))
                continue
            if all(_same_file(p, dest / p.relative_to(run)) for p in run.rglob("*") if p.is_file()):
                done.append((run.name, "unchanged"))
                continue
            with run_lock(dest) if dest.exists() else contextlib.nullcontext():
                _move_in(run, dest)
            done.append((run.name, "added" if have < 0 else "updated"))
        log = tmp / PREPARE_LOG
        if log.is_file():
            _merge_log(log, runs_dir / PREPARE_LOG)
    return done


def _merge_log(source: Path, dest: Path) -> None:
    """Append the lines of the imported build log that the store's lacks."""
    have = set(dest.read_text().splitlines()) if dest.is_file() else set()
    new = [line for line in source.read_text().splitlines() if line and line not in have]
    if new:
        with open(dest, "a") as f:
            f.write("\n".join(new) + "\n")

