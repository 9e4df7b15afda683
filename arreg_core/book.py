"""Build the Jupyter Book: papermill executes every notebook of `notebooks/` with a profile's
parameters into a staging tree beside the book's pages, then `jupyter-book build` renders HTML.

    arreg book --profile cpu      # = make book; HTML in _build/html
    arreg book --profile smoke    # CI; HTML in _build/smoke/_build/html

Runs and analysis artifacts come from the profile's run store ($ARREG_RUNS where set), so a
second build trains nothing; the store's files are checked against its manifest first. The chapters are those of `_toc.yml` (the one list). Every code
cell's input is hidden behind a toggle in the rendered book; MathJax is served by the book
itself (npm package pinned in package.json, installed on first build), so math typesets offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .experiments import Experiments
from .profiles import load_profile

BOOK_FILES = ("_config.yml", "_toc.yml")
# The MathJax files the book serves (node_modules/mathjax/es5 of the pinned npm package).
MATHJAX_PARTS = ("tex-chtml.js", "input", "output", "ui", "a11y", "adaptors")
EXERCISE_TIMINGS = Path("benchmarks") / "results" / "exercise_timings.json"
NOTEBOOK_PARAMETERS = ("profile", "eps", "overrides")  # the parameters cell of every chapter


def toc_chapters(root: Path | None = None) -> tuple[str, ...]:
    """The executed chapters (`file: chapters/NAME` in _toc.yml), in reading order."""
    toc = (root or Path(__file__).resolve().parents[1]) / "_toc.yml"
    return tuple(re.findall(r"file:\s*chapters/(\w+)", toc.read_text())) if toc.exists() else ()


NOTEBOOKS = toc_chapters()  # source notebook notebooks/NAME.ipynb -> chapter chapters/NAME


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


def mathjax_dir(root: Path) -> Path:
    """node_modules/mathjax/es5, installed from package.json (npm ci) when missing."""
    es5 = root / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise BookError("npm is needed once to install MathJax for the book (apt-get install npm, or "
                            "conda install nodejs): the book serves it itself so that math renders offline")
        print("[arreg book] installing MathJax (npm ci)", flush=True)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=root, check=True)
    return es5


def class_fingerprint() -> str:
    """A short hash of the `class` profile (profiles.yaml), which exercise timings are measured for:
    timings of another class profile are not this one's."""
    from .chapter import CLASS_PROFILE

    entry = load_profile(CLASS_PROFILE).entry
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:12]


EXERCISE_MINUTES_LIMIT = 10  # an exercise must fit a class session on 2 cores


def exercise_cells(root: Path, name: str) -> list[tuple[str, str, str]]:
    """[(label, title, source)] of the exercise cells (tagged `exercise`) of notebooks/NAME.ipynb,
    in order; the label and title come from the `{exercise}` directive in the markdown cell before each."""
    cells = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    out, label, title = [], None, None
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            found = re.search(r"```\{exercise\}\s*(.*)\n:label: (\S+)", source)
            if found:
                title, label = found.group(1).strip(), found.group(2)
        elif "exercise" in cell.get("metadata", {}).get("tags", []):
            out.append((label, title, source))
    return out


def source_fingerprint(source: str) -> str:
    """A short hash of an exercise cell's source: a timing holds for the cell it was measured on."""
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def current_timings(root: Path, timings: list[dict]) -> tuple[list[dict], list[str]]:
    """(the timings measured on the exercise cells as they now stand, in the notebooks' order; the
    labels of the cells without one: never measured, or edited since their timing)."""
    by_label = {t["label"]: t for t in timings}
    measured, missing = [], []
    for name in NOTEBOOKS:
        for label, _, source in exercise_cells(root, name):
            t = by_label.get(label)
            fits = t is not None and t.get("source_sha") == source_fingerprint(source)
            measured.append(t) if fits else missing.append(label)
    return measured, missing


def timings_table(root: Path) -> str:
    """The teaching page's table of exercise timings, from benchmarks/results/exercise_timings.json
    (benchmarks/exercise_timings.py): only timings measured for the current `class` profile (its
    fingerprint recorded beside them) and for the exercise cells as they now stand (each cell's source
    hash) are shown; the page names the cells still to be measured, and says how."""
    how = (f"run `python benchmarks/exercise_timings.py --resume` on a quiet machine (nothing else running; it "
           f"records the CPU model, the core count and the torch threads beside each exercise's seconds) and "
           f"commit `{EXERCISE_TIMINGS}`, which this table shows.")
    path = root / EXERCISE_TIMINGS
    if not path.exists():
        return f"*Not measured yet: {how}*\n"
    data = json.loads(path.read_text())
    if data.get("profile") != "smoke" and data.get("class_fingerprint") != class_fingerprint():
        return (f"*To be measured: the timings on record ({data.get('date', 'undated')}) were taken for an earlier "
                f"`class` profile than the current one, so they are not shown. To measure them, {how}*\n")
    timings, missing = current_timings(root, data["timings"])
    if not timings:
        return f"*To be measured: no timing on record was taken on the exercise cells as they now stand. {how}*\n"
    over = [t for t in timings if _over_limit(t)]
    so_far = "" if not missing else (
        f" **Not measured for their current cells ({len(missing)} of {len(timings) + len(missing)}, never "
        f"timed or edited since): {', '.join(missing)}. To measure them, {how}**")
    lines = [f"Measured at the `{data['profile']}` scale on {data['machine']} ({data['threads']} torch threads, "
             f"{data['date']}), each exercise from an empty run store.{so_far} The CPU column is the process's "
             f"CPU seconds per wall-clock second (about {data['threads']} when nothing else ran beside it):\n",
             "| chapter | exercise | seconds | minutes | CPU |", "|---|---|---:|---:|---:|"]
    lines += [_timing_row(t) for t in timings]
    total = sum(t["seconds"] for t in timings) / 60
    verdict = (f"{len(over)} of them {'takes' if len(over) == 1 else 'take'} more than {EXERCISE_MINUTES_LIMIT} minutes, the limit set for a class session"
               if over else f"each within {EXERCISE_MINUTES_LIMIT} minutes")
    return "\n".join(lines) + f"\n\nIn all {total:.0f} minutes for {len(timings)} exercises; {verdict}.\n"


def _over_limit(timing: dict) -> bool:
    """Whether one exercise took longer than EXERCISE_MINUTES_LIMIT."""
    return timing["seconds"] > EXERCISE_MINUTES_LIMIT * 60


def _timing_row(t: dict) -> str:
    """One exercise's row of the timings table; over EXERCISE_MINUTES_LIMIT is said in the row."""
    minutes = f"{t['seconds'] / 60:.1f}" + (" (over the limit)" if _over_limit(t) else "")
    cpu = f"{t['cpu_seconds'] / t['seconds']:.2f}" if "cpu_seconds" in t else ""
    return f"| {t['chapter']} | {t['exercise']} | {t['seconds']:.0f} | {minutes} | {cpu} |"


def stage(profile: str, root: Path) -> Path:
    """A fresh staging tree for `profile`: the book's config, table of contents and pages, its
    static files (book/_static, MathJax) and the exercise timings table."""
    src = root / "_build" / f"src-{profile}"
    shutil.rmtree(src, ignore_errors=True)
    (src / "chapters").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, src / name)
    shutil.copytree(root / "book", src / "book")
    shutil.copytree(root / "book" / "_static", src / "_static")
    # MathJax goes to the output's _static/mathjax through html_extra_path (_extra/): Jupyter Book
    # would load every .js under a static path as a script of every page
    es5, mathjax = mathjax_dir(root), src / "_extra" / "_static" / "mathjax"
    mathjax.mkdir(parents=True)
    for part in MATHJAX_PARTS:
        copy = shutil.copytree if (es5 / part).is_dir() else shutil.copy2
        copy(es5 / part, mathjax / part)
    (src / "book" / "exercise_timings.md").write_text(timings_table(root))
    return src


def notebook_parameters(profile: str, parameters: dict | None) -> dict:
    """The papermill parameters of every chapter: profile, eps and the rest as `overrides`
    (NOTEBOOK_PARAMETERS)."""
    rest = dict(parameters or {})
    params = {"profile": profile}
    if "eps" in rest:
        params["eps"] = rest.pop("eps")
    if rest:
        params["overrides"] = rest
    return params


def hide_inputs(path: Path) -> None:
    """Tag every code cell of an executed notebook `hide-input` (papermill's injected parameters
    too): the book shows results first, the code one click away."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code" and "hide-input" not in tags:
            tags.append("hide-input")
    nbformat.write(nb, path)


def execute(profile: str, src: Path, root: Path, notebooks=NOTEBOOKS, parameters: dict | None = None,
            kernel: str = "python3") -> list[Path]:
    """Papermill-execute each notebook into src/chapters (`notebook_parameters`), with
    ARREG_BOOK_BUILD set so that exercise cells train nothing outside the smoke book."""
    import papermill

    out = []
    os.environ["ARREG_BOOK_BUILD"] = "1"
    try:
        for name in notebooks:
            source, target = root / "notebooks" / f"{name}.ipynb", src / "chapters" / f"{name}.ipynb"
            print(f"[arreg book] executing {name} ({profile})", flush=True)
            try:
                papermill.execute_notebook(str(source), str(target),
                                           parameters=notebook_parameters(profile, parameters),
                                           kernel_name=kernel, cwd=str(root), progress_bar=False)
            except papermill.PapermillExecutionError as err:
                raise BookError(f"notebook {name} failed under profile {profile}: {err.ename}: {err.evalue} "
                                f"(the executed notebook with the traceback: {target})") from None
            hide_inputs(target)
            out.append(target)
    finally:
        os.environ.pop("ARREG_BOOK_BUILD", None)
    return out


def build_html(profile: str, src: Path, root: Path) -> Path:
    """jupyter-book build of the staging tree; raises if Sphinx reports warnings (-W)."""
    output = root if profile == "cpu" else root / "_build" / profile
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(src), "--path-output", str(output), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return html_dir(profile, root)


def _list_parameter(name: str, value) -> list:
    """A list parameter (eps, datasets), given as a list or as the YAML/JSON text of one, as
    `-p eps=[2,6]` or papermill pass it (`profiles.parse_list`); errors name the parameter."""
    from .profiles import parse_list

    example = "[4, 8, 16]" if name == "eps" else "[cifar10]"
    try:
        value = parse_list(value)
    except ValueError:
        raise ValueError(f"-p {name}={value!r} is not a list: write it as {name}={example}") from None
    kind = (int, float) if name == "eps" else str
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, kind)]
    if bad or not value:
        raise ValueError(f"-p {name}: {bad[0] if bad else value!r} is not "
                         f"{'a number' if name == 'eps' else 'a data set name'}: write it as {name}={example}")
    return value


def book_experiments(name: str, parameters: dict | None) -> Experiments:
    """What `arreg book` trains and its notebooks read: the profile `name` with the -p
    `parameters` applied (the notebooks' own parameters, so the same runs), on the machine of
    ARREG_DEVICE, ARREG_DATA and ARREG_RUNS. Everything is checked before anything runs or is
    deleted: no machine settings among the parameters, lists that parse, the device present
    here, every experiment's configs valid. Raises ValueError naming the parameter."""
    from .device import resolve_device

    params = {k: v for k, v in (parameters or {}).items() if v is not None}
    if params.pop("profile", name) != name:
        raise ValueError("choose the profile with --profile, not as a notebook parameter")
    machine = {"device", "data_root", "runs_dir"} & set(params)
    if machine:
        raise ValueError(f"{sorted(machine)} are the machine's settings: set ARREG_DEVICE, ARREG_DATA, ARREG_RUNS")
    for key in ("eps", "datasets"):
        if key in params:
            params[key] = _list_parameter(key, params[key])
    resolve_device(os.environ.get("ARREG_DEVICE") or "auto")
    try:
        return Experiments.from_environment(name, **params)
    except ValueError as err:
        raise ValueError(f"{' '.join(f'-p {k}={v}' for k, v in params.items())}: {err}") from None


def fresh_start(runs_dir: Path) -> None:
    """Delete the run store `runs_dir` for `--fresh`, but only if it is one (every entry a run
    directory this project wrote, or none); anything else is refused in one line naming it."""
    from .runs import is_run_store

    if not runs_dir.exists() and not runs_dir.is_symlink():
        return
    if not is_run_store(runs_dir):
        raise BookError(f"--fresh deletes only a run store, and {runs_dir} is not one (it holds files other than "
                        f"runs this project wrote): point ARREG_RUNS at the run store, or empty it yourself")
    shutil.rmtree(runs_dir)


def build_book(name: str = "cpu", fresh: bool = False, parameters: dict | None = None,
               notebooks=NOTEBOOKS, workers: int = 2, executor=None) -> Path:
    """Train what is missing (`executor`, default `workers` processes), execute the notebooks
    under the profile called `name` and render the book; returns the HTML folder. Every
    parameter is checked first (`book_experiments`); `fresh` then deletes the run store (only a
    run store), so everything is trained and analysed again; else every sealed file of the store
    is checked against its manifest."""
    from .runs import verify_store

    root = repo_root()
    ex = book_experiments(name, parameters)
    if fresh:
        fresh_start(ex.runs_dir)
    verify_store(ex.runs_dir)  # an edited number or artifact stops the build before anything runs
    ex.prepare(workers, executor=executor)
    src = stage(name, root)
    execute(name, src, root, notebooks, ex.profile.parameters)
    return build_html(name, src, root)
