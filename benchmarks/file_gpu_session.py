"""File what a lent GPU session brought back (benchmarks/gpu_session.sh's OUT folder): its logs
and measurements into their own folder, benchmarks/results/gpu_session_<gpu>_<date>/ (then _2,
_3... for the day's later sessions, on any GPU, so that the folders sort in the order filed), and
its packed run store (gpu-runs.partNN) into the
`gpu` tier's store through `arreg import-runs` (verified; a run already further along is kept).
The book's Performance and cost chapter reads every such folder (`arreg_core.gpu_sessions.gpu_sessions`).

    python benchmarks/file_gpu_session.py <the run's files_at folder>
    python benchmarks/file_gpu_session.py OUT --note "what a reader should know of this session"
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
from pathlib import Path

from arreg_core.gpu_sessions import gpu_tag, nvidia_smi, session_folder

ROOT = Path(__file__).resolve().parents[1]


def session_facts(log: str) -> tuple[str, str]:
    """(gpu, date) of a session log: the tag of the GPU nvidia-smi named (`gpu_tag`, as gpu_session.sh
    names its files) and the date gpu_session.sh printed (today's, UTC, where the
    log has none: logs written before it printed one)."""
    line = nvidia_smi(log)
    if line is None:
        raise SystemExit("file_gpu_session: session.log names no NVIDIA GPU (no nvidia-smi line): "
                         "is this gpu_session.sh's OUT folder?")
    date = re.search(r"^date: (\d{4}-\d{2}-\d{2})", log, re.M)
    return gpu_tag(line["gpu"]), date.group(1) if date else datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def file_session(out: Path, results: Path, runs_dir: Path, note: str | None = None) -> tuple[Path, list]:
    """Copy OUT's files (all but the packed store) into a new session folder under `results`, write
    `note` as its notes.md, and import OUT's gpu-runs.part* into `runs_dir`. Returns the folder and
    `transfer.import_parts`'s (run, what) pairs."""
    from arreg_core.transfer import import_parts

    out = Path(out)
    if not (out / "session.log").is_file():
        raise SystemExit(f"file_gpu_session: {out} holds no session.log: give the folder gpu_session.sh wrote "
                         "(the device run's files_at)")
    log = (out / "session.log").read_bytes()
    filed = [p.parent for p in Path(results).glob("gpu_session_*/session.log") if p.read_bytes() == log]
    if filed:
        raise SystemExit(f"file_gpu_session: this session is filed already, as {filed[0]}")
    gpu, date = session_facts(log.decode(errors="replace"))
    parts = sorted(out.glob("gpu-runs.part*"))
    imported = import_parts(parts, runs_dir) if parts else []  # first: a part that does not verify files nothing
    folder = session_folder(results, gpu, date)
    folder.mkdir(parents=True)
    for path in sorted(out.iterdir()):
        if path.is_file() and path not in parts:
            shutil.copy2(path, folder / path.name)
    if note:
        (folder / "notes.md").write_text(note.strip() + "\n")
    return folder, imported


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder gpu_session.sh wrote (OUT; the device run's files_at)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "results" / "gpu" / "runs")
    parser.add_argument("--note", default=None, help="a sentence the book prints with the session (its notes.md)")
    args = parser.parse_args(argv)
    folder, imported = file_session(args.out, args.results, args.runs_dir, args.note)
    print(f"filed {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")
    for run, what in imported:
        print(f"{what:9s} {run}")
    return folder


if __name__ == "__main__":
    main()
