"""The store's manifest: the sha256 of every file a printed number comes from, so that an edit or a
corrupt file is noticed before it is read.

    <runs_dir>/manifest.json     {"files": {"<run>/metrics.json": "<sha256>", ...}}

Sealed are the config.json, history.json, metrics.json and machine.json of each run and its analysis
artifacts (analysis/*.npz). Each is written through `write_bytes`: under the store's lock
(.manifest.lock), its sha256 goes into the manifest (replaced atomically), then the file itself, so
parallel workers lose no entry and a kill between the two leaves a file that is rewritten before it
is read (an unfinished run's history, a missing artifact). `check` verifies one file, `verify_store`
the files of every finished run; `seal` records a store's files as they are, after an intended change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path

from filelock import FileLock

from .io import atomic_write_bytes, atomic_write_json, json_bytes

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
SEALED = re.compile(r"^(?:config|history|metrics|machine)\.json$")  # and analysis/*.npz


class TamperedError(RuntimeError):
    """A sealed file that does not match the manifest (edited, corrupted), or a store without one."""


def seal_command(store: Path) -> str:
    return f"`arreg seal --runs-dir {store}`"


def sealed_files(run: Path) -> list[str]:
    """The names (relative to the run directory) of the run's files the manifest covers."""
    names = [p.name for p in sorted(run.iterdir()) if SEALED.match(p.name) and p.is_file()]
    return names + [f"analysis/{p.name}" for p in sorted((run / "analysis").glob("*.npz"))]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as the manifest records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(store: Path) -> dict | None:
    """{"<run>/<name>": sha256} of the store, or None where it has no manifest."""
    path = Path(store) / MANIFEST
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        if isinstance(files, dict):
            return files
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        pass
    raise TamperedError(f"{path} is not a manifest this project wrote: re-seal the store with {seal_command(store)} "
                        f"once its files are as they should be")


@contextlib.contextmanager
def _lock(store: Path):
    with FileLock(str(Path(store) / LOCK)):
        yield


def write_bytes(run: Path, name: str, payload: bytes) -> None:
    """Write `payload` to run/name atomically, its sha256 recorded in the store's manifest first."""
    run = Path(run)
    with _lock(run.parent):
        files = read(run.parent) or {}
        files[f"{run.name}/{name}"] = hashlib.sha256(payload).hexdigest()
        atomic_write_json(run.parent / MANIFEST, {"files": dict(sorted(files.items()))})
        atomic_write_bytes(run / name, payload)


def write_json(run: Path, name: str, obj) -> None:
    write_bytes(run, name, json_bytes(obj))


def _problem(run: Path, name: str) -> str | None:
    """Why run/name is not what the manifest says, or None when it is."""
    store, path = run.parent, run / name
    expected = (read(store) or {}).get(f"{run.name}/{name}")
    if expected is None:
        return f"{path} is not in {store / MANIFEST} (not written by arreg, or written before the store was sealed)"
    if file_sha256(path) != expected:
        return f"{path} does not match its sha256 in {store / MANIFEST} (edited or corrupted after it was written)"
    return None


def check(run: Path, name: str, fix: str) -> None:
    """Raise TamperedError, naming the file, `fix` and the seal command, unless run/name matches the
    manifest. A mismatch is looked at again under the lock: a writer may be between the two."""
    run = Path(run)
    if read(run.parent) is None:
        raise TamperedError(f"{run.parent} has no {MANIFEST}, so {run / name} and the rest of the store cannot be "
                            f"checked: once you trust its files, seal it with {seal_command(run.parent)}")
    why = _problem(run, name)
    if why is None:
        return
    with contextlib.suppress(OSError):  # a read-only store has no writer to wait for
        with _lock(run.parent):
            why = _problem(run, name)
    if why is not None:
        raise TamperedError(f"{why}: {fix}, or if the change was intended re-seal the store with "
                            f"{seal_command(run.parent)}")


def finished_runs(store: Path) -> list[Path]:
    """The run directories of `store` with a metrics.json (symbolic links left out)."""
    return [p.parent for p in sorted(Path(store).glob("*/metrics.json")) if not p.parent.is_symlink()]


def verify_store(store: Path, fixes) -> None:
    """Check every sealed file of every finished run; `fixes(run, name)` is the fix a message names."""
    for run in finished_runs(store):
        for name in sealed_files(run):
            check(run, name, fixes(run, name))


def seal(store: Path) -> int:
    """Record every sealed file of the store's runs as it is now; returns how many."""
    store = Path(store)
    with _lock(store):
        files = {f"{run.name}/{name}": file_sha256(run / name)
                 for run in sorted(p for p in store.iterdir() if p.is_dir() and not p.is_symlink())
                 for name in sealed_files(run)}
        atomic_write_json(store / MANIFEST, {"files": dict(sorted(files.items()))})
    return len(files)


def move_run(store: Path, old: str, new: str) -> None:
    """Rename the run directory `old` to `new` with its manifest entries."""
    store = Path(store)
    with _lock(store):
        (store / old).rename(store / new)
        files = read(store)
        if files is not None:
            files = {(f"{new}/{k.split('/', 1)[1]}" if k.split("/", 1)[0] == old else k): v for k, v in files.items()}
            atomic_write_json(store / MANIFEST, {"files": dict(sorted(files.items()))})
