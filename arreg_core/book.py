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


def prepare_runs(profile: str, runs_dir: Path, parameters: dict | None = None, workers: int = 2) -> list[str]:
    """Train and analyse every run the notebooks will read, before executing them, in `workers`
    parallel processes (arreg_core.experiments.prepare_profile). `parameters` are the notebooks'
    papermill parameters: the same overrides reach the same runs."""
    from .experiments import prepare_profile

    overrides = {k: v for k, v in (parameters or {}).items() if v is not None}
    if overrides.pop("profile", profile) != profile:
        raise ValueError("choose the profile with --profile, not as a notebook parameter")
    overrides.pop("runs_dir", None)  # given resolved against the repository
    device, data_root = overrides.pop("device", None) or "auto", overrides.pop("data_root", None)
    if "eps_list" in overrides:
        overrides["eps"] = overrides.pop("eps_list")
    return prepare_profile(profile, workers=workers, runs_dir=runs_dir, device=device, data_root=data_root,
                           **overrides)


# The parameters cell every notebook shares: the only names `arreg book -p` passes on.
NOTEBOOK_PARAMETERS = ("profile", "datasets", "eps_list", "arch", "epochs", "n_train", "n_test", "seed", "device",
                       "data_root", "runs_dir")


def _number_list(name: str, value) -> list:
    """A notebook's list parameter (eps_list, datasets), given as a list or as the YAML/JSON text
    papermill passes; errors name the parameter."""
    import yaml

    example = "[4, 8, 16]" if name == "eps_list" else "[cifar10]"
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"-p {name}={value!r} is not a list: write it as {name}={example}") from None
    value = value if isinstance(value, list) else [value]
    kind = (int, float) if name == "eps_list" else str
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, kind)]
    if bad or not value:
        raise ValueError(f"-p {name}: {bad[0] if bad else value!r} is not "
                         f"{'a number' if name == 'eps_list' else 'a data set name'}: write it as {name}={example}")
    return value


def check_parameters(profile: str, parameters: dict | None) -> dict:
    """The notebooks' parameters, checked before anything runs or is deleted: known names, lists
    that parse, a device that exists here, and every experiment's configs valid. Returns them with
    eps_list and datasets as lists. Raises ValueError naming the parameter."""
    from .profiles import EXPERIMENTS, experiment_configs
    from .runs import resolve_device

    params = {k: v for k, v in (parameters or {}).items() if v is not None}
    unknown = sorted(set(params) - set(NOTEBOOK_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown notebook parameters {unknown}; the notebooks take {', '.join(NOTEBOOK_PARAMETERS)}")
    if params.get("profile", profile) != profile:
        raise ValueError("choose the profile with --profile, not as a notebook parameter")
    for name in ("eps_list", "datasets"):
        if name in params:
            params[name] = _number_list(name, params[name])
    for name in ("runs_dir", "data_root", "device", "arch"):
        if name in params and not isinstance(params[name], str):
            raise ValueError(f"-p {name}={params[name]!r}: text expected")
    resolve_device(params.get("device", "auto"))
    overrides = {("eps" if k == "eps_list" else k): v for k, v in params.items()
                 if k not in ("profile", "device", "data_root", "runs_dir")}
    for experiment in EXPERIMENTS:
        try:
            experiment_configs(profile, experiment, **overrides)
        except ValueError as err:
            given = " ".join(f"-p {k}={v}" for k, v in params.items() if k not in ("device", "data_root", "runs_dir"))
            raise ValueError(f"{given}: {err}") from None
    return params


def fresh_start(runs_dir: Path) -> None:
    """Delete the run store `runs_dir` for `--fresh`, but only if it is one (every entry a run
    directory this project wrote, or none); anything else is refused in one line naming it."""
    from .runs import is_run_store

    if not runs_dir.exists() and not runs_dir.is_symlink():
        return
    if not is_run_store(runs_dir):
        raise BookError(f"--fresh deletes only a run store, and {runs_dir} is not one (it holds files other than "
                        f"runs this project wrote): name the run store with -p runs_dir=, or empty it yourself")
    shutil.rmtree(runs_dir)


def build_book(profile: str = "cpu", fresh: bool = False, parameters: dict | None = None,
               notebooks=NOTEBOOKS, workers: int = 2) -> Path:
    """Train what is missing (`workers` processes), execute the notebooks under `profile` and
    render the book; returns the HTML folder. Every parameter is checked first; `fresh` then
    deletes the run store (only a run store), so everything is trained and analysed again."""
    root = repo_root()
    parameters = check_parameters(profile, parameters)
    runs_dir = root / (parameters.get("runs_dir") or load_profile(profile)["runs_dir"])
    if fresh:
        fresh_start(runs_dir)
    prepare_runs(profile, runs_dir, parameters, workers)
    src = stage(profile, root)
    execute(profile, src, root, notebooks, parameters)
    return build_html(profile, src, root)
