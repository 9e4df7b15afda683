"""Files written so that a reader never sees half of one: atomic writes (temp file in the same
folder, fsync, rename), JSON and .npz reading that names a broken file, for the run store, the
analysis artifacts and the data cache."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, BinaryIO

import numpy as np


class UnreadableFileError(ValueError):
    """A file of the store that does not parse (truncated, corrupt); the message names it and the fix."""


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
    The file is readable by all (0644 under the usual umask), like any tool's output. An OSError
    without a file name (a full disk fails fsync or write) gets `path`'s, so its message names the folder."""
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
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, lambda f: f.write(payload))


def json_bytes(obj) -> bytes:
    """`obj` as the store writes JSON: indented, keys sorted, a final newline."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def read_npz(path: Path, fix: str) -> dict:
    """Every array of the .npz at `path` (strings and numbers only, no pickles); a file that does not
    parse raises UnreadableFileError naming it and `fix`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, zlib.error, OSError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # a missing or unreadable file, not a broken one
            raise
        why = " ".join(str(err).split()) or type(err).__name__
        raise UnreadableFileError(f"{path} is not a readable .npz ({why[:120]}): it is truncated or corrupt; "
                                  f"{fix}") from None
