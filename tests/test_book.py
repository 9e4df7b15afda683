"""The book's sources: notebooks stripped and parameterised, chapters and table of contents in
step; and (in `make test`, as CI runs it) every notebook executed under the `smoke` profile and
the book built from those outputs."""
import json
import re
from pathlib import Path

import pytest
import yaml

from arreg_core.book import NOTEBOOKS, build_book, html_dir

ROOT = Path(__file__).resolve().parents[1]


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
    source = "".join(params[0]["source"])
    for name_ in ("profile", "eps_list", "datasets", "epochs", "n_train", "n_test", "device", "data_root",
                  "runs_dir", "seed"):
        assert re.search(rf"^{name_} = ", source, re.M), f"parameter {name_} missing"
    # thin notebooks: no training loops or model code of their own
    body = "".join("".join(c["source"]) for c in code)
    assert "optimizer" not in body and ".backward(" not in body and "nn.Module" not in body


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
    assert (html / "book" / "intro.html").exists() and (html / "book" / "references.html").exists()


def test_book_prepares_the_runs_the_notebooks_read(tmp_path):
    """`arreg book` trains missing runs before the notebooks execute; with the notebooks' own
    parameters it must reach exactly the runs the notebooks resolve (eps_list is their name for eps)."""
    from arreg_core.book import prepare_runs
    from arreg_core.experiments import ANALYSED, Experiments
    from arreg_core.runs import run_name

    params = {"eps_list": [4], "epochs": 1, "n_train": 60, "n_test": 40, "device": "cpu", "runs_dir": "ignored"}
    done = prepare_runs("smoke", tmp_path, params, workers=1)
    ex = Experiments.from_parameters("smoke", runs_dir=tmp_path, device="cpu", eps=[4], epochs=1, n_train=60, n_test=40)
    expected = {run_name(c) for exp in ANALYSED for c in ex.configs(exp)}
    assert set(done) == expected and len(done) == len(expected)
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert all((tmp_path / name / "metrics.json").exists() for name in done)
    sweep = ex.runs("ar_sweep")
    assert (tmp_path / sweep.run.iloc[0] / "analysis").is_dir()  # its artifacts too
    with pytest.raises(ValueError, match="unknown parameters"):
        prepare_runs("smoke", tmp_path, {"eps_lst": [4]}, workers=1)
    with pytest.raises(ValueError, match="--profile"):
        prepare_runs("smoke", tmp_path, {"profile": "cpu"}, workers=1)


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
