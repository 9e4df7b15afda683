"""Where the lent GPU sessions' files are: benchmarks/gpu_session.sh names what it measures by the
GPU's tag (gpu_step_matrix_h200.json), benchmarks/file_gpu_session.py files each session in its own
folder, benchmarks/results/gpu_session_<gpu>_<date>[_N]/, and the next session (which measures the
stack only once per GPU) and the book's Performance and cost chapter find them again here.

Standard library only: gpu_session.sh calls it on a lent machine before anything else is known.

    python -m arreg_core.gpu_sessions tag "NVIDIA H200"                  # h200
    python -m arreg_core.gpu_sessions filed gpu_step_stacked h200        # the newest filed file, or nothing
    python -m arreg_core.gpu_sessions stack-cells OUT h200               # the cells that decide the stack
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
GPUS = re.compile(r"h100|h200|a100|l40s", re.I)
SESSION = re.compile(r"gpu_session_([a-z0-9]+)_(\d{4}-\d{2}-\d{2})(?:_(\d+))?")


def gpu_tag(name: str) -> str:
    """The tag a GPU's files are named by: h100, h200, a100 or l40s as its name says, else "gpu"."""
    found = GPUS.search(name or "")
    return found.group(0).lower() if found else "gpu"


def gpu_sessions(results: Path | None = None) -> list[str]:
    """The lent GPU sessions filed under benchmarks/results by benchmarks/file_gpu_session.py, one
    folder each (gpu_session_<gpu>_<date>, then _2, _3... for the day's later sessions, on any GPU),
    oldest first."""
    root = Path(results or RESULTS)
    folders = [p.name for p in root.iterdir() if SESSION.fullmatch(p.name)] if root.is_dir() else []
    return sorted(folders, key=lambda f: (SESSION.fullmatch(f).group(2), int(SESSION.fullmatch(f).group(3) or 1), f))


def session_gpu(folder: str) -> str:
    """The GPU a session folder names (h200, h100...)."""
    return SESSION.fullmatch(folder).group(1)


def session_folder(results: Path, gpu: str, date: str) -> Path:
    """Where a new session of `gpu` on `date` is filed: results/gpu_session_<gpu>_<date>, with _N
    where N - 1 sessions of that date (on any GPU) are filed already."""
    filed = [p for p in Path(results).glob(f"gpu_session_*_{date}*")
             if (m := SESSION.fullmatch(p.name)) and m.group(2) == date]
    return Path(results) / (f"gpu_session_{gpu}_{date}" + (f"_{len(filed) + 1}" if filed else ""))


def nvidia_smi(text: str) -> dict | None:
    """The GPU, driver and memory of the nvidia-smi line a session log holds (None where none)."""
    line = re.search(r"^(NVIDIA [^,\n]+), ([\d.]+), (\d+) MiB", text, re.M)
    return line and {"gpu": line.group(1), "driver": line.group(2), "memory_gib": int(line.group(3)) / 1024}


def newest_files(prefix: str, results: Path | None = None) -> dict[str, str]:
    """{gpu: `<folder>/<prefix>_<gpu>.json` of the newest session on that GPU that wrote one}, the
    GPUs in the order of those sessions (the newest last)."""
    newest = {}
    for folder in reversed(gpu_sessions(results)):
        name = f"{folder}/{prefix}_{session_gpu(folder)}.json"
        if (Path(results or RESULTS) / name).exists():
            newest.setdefault(session_gpu(folder), name)
    return dict(reversed(newest.items()))


def newest_file(prefix: str, gpu: str | None = None, results: Path | None = None) -> str | None:
    """`<folder>/<prefix>_<gpu>.json` of the newest session (on `gpu`; on any where None) that
    wrote one, or None where none did."""
    files = newest_files(prefix, results)
    return files.get(gpu) if gpu else next(reversed(files.values()), None)


def stack_cells(out: Path, gpu: str, results: Path | None = None) -> Path | None:
    """The cells a session decides its stack from (benchmarks/gpu_tier_plan.py --stack): the stacked
    cells it measured itself (OUT/gpu_step_stacked_<gpu>.json), else the newest filed session's of
    this GPU (the stack is measured once per GPU), else its own step matrix; None where it has none."""
    own = [Path(out) / f"gpu_step_stacked_{gpu}.json"]
    filed = newest_file("gpu_step_stacked", gpu, results)
    candidates = own + ([Path(results or RESULTS) / filed] if filed else []) + [Path(out) / f"gpu_step_matrix_{gpu}.json"]
    return next((path for path in candidates if path.is_file()), None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("tag", help="print the tag of the GPU named NAME (gpu_tag)").add_argument("name")
    filed = verbs.add_parser("filed", help="print the newest filed <prefix>_<gpu>.json's path, or nothing")
    filed.add_argument("prefix")
    filed.add_argument("gpu")
    cells = verbs.add_parser("stack-cells", help="print the cells that decide the stack (stack_cells), or nothing")
    cells.add_argument("out", type=Path)
    cells.add_argument("gpu")
    for verb in (filed, cells):
        verb.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.verb == "tag":
        print(gpu_tag(args.name))
        return
    if args.verb == "filed":
        name = newest_file(args.prefix, args.gpu, args.results)
        path = args.results / name if name else None
    else:
        path = stack_cells(args.out, args.gpu, args.results)
    # relative to the working directory where below it (gpu_session.sh runs in the repository's root)
    print("" if path is None else path.resolve().relative_to(Path.cwd()) if path.resolve().is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
