"""The book's sources: notebooks stripped and parameterised, chapters and table of contents in
step; and (in `make test`, as CI runs it) every notebook executed under the `smoke` profile and
the book built from those outputs."""
import json
import re
from pathlib import Path

import pytest
import yaml

from arreg_core.book import NOTEBOOK_PARAMETERS, NOTEBOOKS, build_book, html_dir, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
# The chapters of Sections 4 and B: each ends with exercises
EXERCISE_CHAPTERS = ("sec4_1", "sec4_2_1", "sec4_2_2", "secB3", "secB4", "secB5", "secB6")


def load_notebook(name):
    return json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())


def test_every_notebook_is_in_the_toc_and_the_builder():
    on_disk = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert on_disk == set(NOTEBOOKS)
    toc = (ROOT / "_toc.yml").read_text()
    in_toc = set(re.findall(r"file: chapters/(\w+)", toc))
    assert in_toc == set(NOTEBOOKS)
    yaml.safe_load(toc)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_source_notebooks_are_stripped_and_parameterised(name):
    nb = load_notebook(name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code), "commit notebooks without outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and code.index(params[0]) == 0
    # thin notebooks: no training loops or model code of their own
    body = "".join("".join(c["source"]) for c in code)
    assert "optimizer" not in body and ".backward(" not in body and "nn.Module" not in body
    source = "".join(params[0]["source"])
    assert len(source.strip().splitlines()) <= 3, "the first code cell is at most 3 lines"
    assert re.findall(r"^(\w+) = ", source, re.M) == list(NOTEBOOK_PARAMETERS)
    # results first, code one click away: every code cell's input hidden, the parameters cell too
    assert all("hide-input" in c["metadata"].get("tags", []) for c in code)
    # one import line and one call: chapter.setup, which reads the machine's settings from ARREG_*;
    # the import brings chapter and the arreg_core modules the page uses (paper, plots; scorecard)
    setup = "".join(code[1]["source"]).strip().splitlines()
    assert re.fullmatch(r"from arreg_core import chapter(, \w+( as \w+)?)*", setup[0]), setup[0]
    assert setup[1].startswith("ex = chapter.setup(")
    lines = "\n".join("".join(c["source"]) for c in code).splitlines()
    assert len(setup) == 2 and sum(line.startswith(("import ", "from ")) for line in lines) == 1
    # no joining artifacts to runs by hand: the Experiments accessors do it
    assert "itertuples" not in body and '["meta"]["summary"]' not in body


@pytest.mark.parametrize("name", EXERCISE_CHAPTERS)
def test_chapters_of_sections_4_and_B_end_with_exercises(name):
    """2-3 sphinx-exercise exercises, each with a hidden solution and a runnable cell that trains at
    the class scale (smoke under the smoke profile: the smoke book runs them all)."""
    cells = load_notebook(name)["cells"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", text)
    assert 2 <= len(labels) <= 3
    for label in labels:
        assert re.search(rf"```\{{solution\}} {re.escape(label)}\n:class: dropdown", text), f"{label}: no hidden solution"
    runnable = [c for c in cells if "exercise" in c["metadata"].get("tags", [])]
    assert len(runnable) == len(labels) and all("chapter.exercise(profile" in "".join(c["source"]) for c in runnable)


def test_chapters_come_from_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert tuple(f.split("/")[1] for f in files if f.startswith("chapters/")) == NOTEBOOKS
    assert "book/teaching" in files


def test_notebook_parameters_pack_overrides():
    assert notebook_parameters("cpu", None) == {"profile": "cpu"}
    assert notebook_parameters("cpu", {"eps": [2, 6], "epochs": 3}) == {
        "profile": "cpu", "eps": [2, 6], "overrides": {"epochs": 3}}


@pytest.mark.book
def test_smoke_book_executes_every_notebook_and_builds(tmp_path):
    html = build_book("smoke")
    assert html == html_dir("smoke")
    for name in NOTEBOOKS:
        page = html / "chapters" / f"{name}.html"
        assert page.exists(), f"{page} was not built"
        text = page.read_text()
        assert "Traceback" not in text  # papermill already fails on an error; this guards the rendered page
        for img in re.findall(r'<img[^>]+src="([^"]+)"', text):
            if not img.startswith(("http", "data:")):
                assert (page.parent / img).exists(), f"{name}: missing figure {img}"
        # every code cell's input behind a toggle; the parameters papermill injected too
        assert 'class="cell tag_hide-input' in text
        assert "tag_parameters" not in text or re.search(r'cell tag_parameters tag_hide-input|cell tag_hide-input', text)
    for name in EXERCISE_CHAPTERS:
        text = (html / "chapters" / f"{name}.html").read_text()
        assert text.count('class="exercise admonition') >= 2, f"{name}: fewer than 2 exercises rendered"
        assert "Not run while the book was built" not in text  # the smoke book runs every exercise cell
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (html / "book" / "intro.html").exists() and (html / "book" / "references.html").exists()
    assert (html / "book" / "teaching.html").exists()


def test_book_prepares_the_runs_the_notebooks_read(tmp_path, monkeypatch):
    """`arreg book` trains missing runs before the notebooks execute; with the notebooks' own
    parameters it must reach exactly the runs the notebooks resolve. Bad parameters are one
    ValueError naming them, before anything runs."""
    from arreg_core.book import book_experiments
    from arreg_core.experiments import ANALYSED, Experiments
    from arreg_core.runs import run_name

    monkeypatch.setenv("ARREG_RUNS", str(tmp_path))
    monkeypatch.setenv("ARREG_DEVICE", "cpu")
    params = {"eps": "[4]", "epochs": 1, "n_train": 60, "n_test": 40}
    done = book_experiments("smoke", params).prepare(1)
    ex = Experiments.from_parameters("smoke", runs_dir=tmp_path, device="cpu", eps=[4], epochs=1, n_train=60, n_test=40)
    expected = {run_name(c) for exp in ANALYSED for c in ex.configs(exp)}
    assert set(done) == expected and len(done) == len(expected)
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == expected  # beside the build log
    assert all((tmp_path / name / "metrics.json").exists() for name in done)
    sweep = ex.runs("ar_sweep")
    assert (tmp_path / sweep.run.iloc[0] / "analysis").is_dir()  # its artifacts too
    with pytest.raises(ValueError, match="-p eps_lst=.*unknown parameters"):
        book_experiments("smoke", {"eps_lst": [4]})
    with pytest.raises(ValueError, match="--profile"):
        book_experiments("smoke", {"profile": "cpu"})
    with pytest.raises(ValueError, match="ARREG_DEVICE"):
        book_experiments("smoke", {"device": "cpu"})
    with pytest.raises(ValueError, match="-p compile=graphs: .*valid: true, false, default"):
        book_experiments("smoke", {"compile": "graphs"})


def test_a_failing_notebook_is_one_line_naming_it(tmp_path):
    import nbformat

    from arreg_core.book import BookError, execute

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    params = nbformat.v4.new_code_cell('profile = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell('raise FileNotFoundError("put the data under X")')]
    nbformat.write(nb, tmp_path / "notebooks" / "broken.ipynb")
    (tmp_path / "src" / "chapters").mkdir(parents=True)
    with pytest.raises(BookError, match="notebook broken failed under profile smoke: FileNotFoundError: put the data") as err:
        execute("smoke", tmp_path / "src", tmp_path, notebooks=("broken",))
    assert "\n" not in str(err.value)


def test_the_teaching_page_shows_only_timings_measured_for_the_current_class_profile_and_cells(tmp_path):
    """Exercise timings taken for an earlier class profile (or none) are not printed as this one's:
    the page says they are to be measured, and how; timings with the current fingerprint are shown,
    each only for the exercise cell as it now stands (its source hash), the others named as unmeasured."""
    import shutil

    from arreg_core.book import EXERCISE_TIMINGS, class_fingerprint, exercise_cells, source_fingerprint, timings_table

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    cells = {label: (name, title, source_fingerprint(source))
             for name in NOTEBOOKS for label, title, source in exercise_cells(tmp_path, name)}
    assert len(cells) == 14 and cells["secB4-sn1"][:2] == ("secB4", "The strongest clip")

    def timing(label, seconds, **more):
        name, title, sha = cells[label]
        return {"chapter": name, "exercise": title, "label": label, "source_sha": sha, "seconds": seconds, **more}

    path = tmp_path / EXERCISE_TIMINGS
    assert timings_table(tmp_path).startswith("*Not measured yet") and "quiet machine" in timings_table(tmp_path)
    path.parent.mkdir(parents=True)
    every = [timing(label, 81.3) for label in cells]
    record = {"profile": "class", "machine": "Some CPU, 2 cores", "threads": 2, "date": "2026-11-28", "timings": every}
    path.write_text(json.dumps(record))
    stale = timings_table(tmp_path)
    assert stale.startswith("*To be measured") and "81" not in stale and "benchmarks/exercise_timings.py" in stale
    current = {**record, "class_fingerprint": class_fingerprint()}
    path.write_text(json.dumps(current))
    shown = timings_table(tmp_path)
    assert "| sec4_1 | A weaker attack | 81 | 1.4 |  |" in shown and shown.count("| 81 | 1.4 |") == 14
    assert "Not measured" not in shown and "each within 10 minutes" in shown
    # a cell edited since its timing, and one never timed (a run stopped part-way), are named, not shown;
    # an exercise over 10 minutes is flagged in its row and the summary
    edited = {**timing("secB4-noop", 300.0), "source_sha": "0" * 12}
    slow = timing("secB4-sn1", 727.0, cpu_seconds=1000.0)
    kept = [t for t in every if t["label"] not in ("secB4-sn1", "secB4-noop", "secB6-random-start")]
    path.write_text(json.dumps({**current, "complete": False, "timings": kept + [edited, slow]}))
    partial = timings_table(tmp_path)
    assert "Not measured for their current cells (2 of 14, never timed or edited since): secB4-noop, secB6-random-start" in partial
    assert "| secB4 | The strongest clip | 727 | 12.1 (over the limit) | 1.38 |" in partial and "| 300 |" not in partial
    assert "1 of them takes more than 10 minutes" in partial and "for 12 exercises" in partial
    # no timing fits the cells as they stand: nothing to show
    path.write_text(json.dumps({**current, "timings": [edited]}))
    assert timings_table(tmp_path).startswith("*To be measured: no timing on record")
