"""Wall time of every exercise cell of the book (cells tagged `exercise` in notebooks/*.ipynb), each
from an empty run store, as a student running it for the first time would wait. The teaching
page (book/teaching.md) shows the table this writes.

    python benchmarks/exercise_timings.py                      # class scale, on a quiet machine
    python benchmarks/exercise_timings.py --resume             # only the cells edited since, or never timed
    python benchmarks/exercise_timings.py --profile smoke --json /tmp/smoke.json   # a quick check

Each cell runs in a fresh namespace holding what a chapter's header defines (`profile` and the
modules `chapter`, `paper`, `plots`) (the cell then trains at the `class`
scale, or `smoke` for --profile smoke) and ARREG_RUNS pointing at a new temporary run store (or at
STORES/LABEL with --stores, kept to check the exercise's solution against what it trained). Each
timing records its cell's source hash: the teaching page shows a timing only for the cell as it now
stands, and --resume measures again exactly the cells edited since.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "exercise_timings.json"


def time_cell(source: str, profile: str, store: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to run one exercise cell from an empty run store
    (a temporary one, or `store`, which must not hold runs yet; its printed output discarded). CPU
    seconds well below threads x wall mean the machine was shared while it ran."""
    from IPython.display import display

    from arreg_core import chapter, paper, plots

    if store is not None and store.exists() and any(store.iterdir()):
        raise SystemExit(f"{store} is not empty: a timing starts from an empty run store; remove it or pick another --stores")
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(store)) if store else tempfile.TemporaryDirectory()) as store:
        os.environ["ARREG_RUNS"] = store
        namespace = {"profile": profile, "display": display, "chapter": chapter, "paper": paper, "plots": plots}
        start, cpu_start = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<exercise>", "exec"), namespace)
        return time.perf_counter() - start, time.process_time() - cpu_start


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def main(argv=None) -> dict:
    from arreg_core.book import NOTEBOOKS, current_timings, exercise_cells, source_fingerprint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="the notebooks' profile: cpu runs the exercises at the "
                        "class scale, smoke at the smoke scale")
    parser.add_argument("--notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as torch sets them)")
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    parser.add_argument("--resume", action="store_true", help="keep the exercises already measured in --json "
                        "for the same class profile, machine and torch on the cells as they now stand, and measure the rest")
    parser.add_argument("--stores", default=None, help="keep each exercise's run store in STORES/LABEL (default: "
                        "a temporary one, removed)")
    args = parser.parse_args(argv)
    if set(args.notebooks) - set(NOTEBOOKS):
        parser.error(f"unknown notebooks {sorted(set(args.notebooks) - set(NOTEBOOKS))}; choose from {', '.join(NOTEBOOKS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.pop("ARREG_BOOK_BUILD", None)
    from arreg_core.book import class_fingerprint
    from arreg_core.chapter import CLASS_PROFILE

    result = {"profile": "smoke" if args.profile == "smoke" else CLASS_PROFILE, "class_fingerprint": class_fingerprint(),
              "machine": f"{cpu_model()}, {os.cpu_count()} cores",
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "date": datetime.date.today().isoformat(), "complete": False, "timings": []}
    out = Path(args.json)
    if args.resume and out.exists():
        earlier = json.loads(out.read_text())
        if all(earlier.get(k) == result[k] for k in ("profile", "class_fingerprint", "machine", "threads", "torch")):
            result["timings"] = earlier["timings"]
    result["timings"], missing = current_timings(ROOT, result["timings"])  # only those of the cells as they stand
    cells = [(name, *cell) for name in args.notebooks for cell in exercise_cells(ROOT, name) if cell[0] in missing]
    result["complete"] = not missing
    saved = os.environ.get("ARREG_RUNS")
    try:
        for name, label, title, source in cells:
            store = Path(args.stores) / label if args.stores else None
            seconds, cpu_seconds = time_cell(source, args.profile, store)
            print(f"{name} {label}: {seconds:.0f} s ({cpu_seconds / seconds:.2f} CPU s per s)", flush=True)
            result["timings"].append({"chapter": name, "exercise": title, "label": label,
                                      "source_sha": source_fingerprint(source), "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                                      "load_1min": round(os.getloadavg()[0], 2)})
            result["timings"], missing = current_timings(ROOT, result["timings"])  # in the notebooks' order
            result["complete"] = not missing
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")  # after every exercise: an interrupted run keeps its timings
    finally:
        os.environ.pop("ARREG_RUNS", None) if saved is None else os.environ.update(ARREG_RUNS=saved)
    return result


if __name__ == "__main__":
    main()
