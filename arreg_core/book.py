"""Build the Jupyter Book: papermill executes every notebook of `notebooks/` with a profile's
parameters into a staging tree beside the book's pages, then `jupyter-book build` renders HTML.

    arreg book --profile cpu      # = make book; HTML in _build/html
    arreg book --profile smoke    # CI; HTML in _build/smoke/_build/html

Runs and analysis artifacts come from the profile's run store, so a second build trains nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .profiles import load_profile

# Source notebook -> chapter, in reading order (_toc.yml lists the same chapters).
NOTEBOOKS = (
    "overview", "sec4_1", "sec4_2_1", "sec4_2_2", "secB3", "secB4", "secB5", "secB6", "secD2", "scorecard",
)
BOOK_FILES = ("_config.yml", "_toc.yml")


class BookError(RuntimeError):
    """A notebook failed while building the book; the message says which and why, in one line."""


def repo_root() -> Path:
    """The checkout this package lives in (the book needs the repository, not just the package)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "notebooks").is_dir():
        raise FileNotFoundError(f"{root} has no notebooks/: run `arreg book` from a clone of the repository")
    return root


def html_dir(profile: str, root: Path | None = None) -> Path:
    root = root or repo_root()
    return root / "_build" / "html" if profile == "cpu" else root / "_build" / profile / "_build" / "html"


def stage(profile: str, root: Path) -> Path:
    """A fresh staging tree for `profile`: the book's config, table of contents and pages."""
    src = root / "_build" / f"src-{profile}"
    shutil.rmtree(src, ignore_errors=True)
    (src / "chapters").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, src / name)
    shutil.copytree(root / "book", src / "book")
    return src


def execute(profile: str, src: Path, root: Path, notebooks=NOTEBOOKS, parameters: dict | None = None,
            kernel: str = "python3") -> list[Path]:
    """Papermill-execute each notebook into src/chapters with {"profile": profile, **parameters}."""
    import papermill

    out = []
    for name in notebooks:
        target = src / "chapters" / f"{name}.ipynb"
        print(f"[arreg book] executing {name} ({profile})", flush=True)
        try:
            papermill.execute_notebook(str(root / "notebooks" / f"{name}.ipynb"), str(target),
                                       parameters={"profile": profile, **(parameters or {})},
                                       kernel_name=kernel, cwd=str(root), progress_bar=False)
        except papermill.PapermillExecutionError as err:
            raise BookError(f"notebook {name} failed under profile {profile}: {err.ename}: {err.evalue} "
                            f"(the executed notebook with the traceback: {target})") from None
        out.append(target)
    return out


def build_html(profile: str, src: Path, root: Path) -> Path:
    """jupyter-book build of the staging tree; raises if Sphinx reports warnings (-W)."""
    output = root if profile == "cpu" else root / "_build" / profile
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(src), "--path-output", str(output), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return html_dir(profile, root)


def prepare_runs(profile: str, runs_dir: Path, parameters: dict | None = None, workers: int = 2,
                 executor=None) -> list[str]:
    """Train and analyse every run the notebooks will read, before executing them, with `executor`
    (default: `workers` parallel processes; arreg_core.experiments.prepare_profile). `parameters`
    are the notebooks' papermill parameters: the same overrides reach the same runs."""
    from .experiments import prepare_profile

    overrides = {k: v for k, v in (parameters or {}).items() if v is not None}
    if overrides.pop("profile", profile) != profile:
        raise ValueError("choose the profile with --profile, not as a notebook parameter")
    overrides.pop("runs_dir", None)  # given resolved against the repository
    device, data_root = overrides.pop("device", None) or "auto", overrides.pop("data_root", None)
    if "eps_list" in overrides:
        overrides["eps"] = overrides.pop("eps_list")
    return prepare_profile(profile, workers=workers, runs_dir=runs_dir, device=device, data_root=data_root,
                           executor=executor, **overrides)


def build_book(profile: str = "cpu", fresh: bool = False, parameters: dict | None = None,
               notebooks=NOTEBOOKS, workers: int = 2, executor=None) -> Path:
    """Train what is missing (`executor`, default `workers` processes), execute the notebooks
    under `profile` and render the book; returns the HTML folder. `fresh` deletes the run store first, so everything
    is trained and analysed again."""
    root = repo_root()
    runs_dir = root / ((parameters or {}).get("runs_dir") or load_profile(profile)["runs_dir"])
    if fresh and runs_dir.exists():
        shutil.rmtree(runs_dir)
    prepare_runs(profile, runs_dir, parameters, workers, executor)
    src = stage(profile, root)
    execute(profile, src, root, notebooks, parameters)
    return build_html(profile, src, root)
