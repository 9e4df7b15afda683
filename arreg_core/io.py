"""Files written so that a reader never sees half of one: atomic writes (temp file in the same
folder, fsync, rename) and JSON, for the run store, the analysis artifacts and the data cache."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, BinaryIO


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask sets as it reads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(f)` into a temp file in `path`'s folder, fsync, then rename over `path`: a reader sees
    the old file or the whole new one, and a killed write leaves only a `.<name>.*.tmp` behind.
    The file is readable by all (0644 under the usual umask), like any tool's output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, lambda f: f.write(payload))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path):
    return json.loads(Path(path).read_text())
