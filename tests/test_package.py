"""The package's public API: the names arreg_core re-exports are its modules' own objects."""
import importlib
import re
from pathlib import Path

import pytest

import arreg_core
from arreg_core import (TrainConfig, analyze, build_model, fgsm, get_or_train, load_artifact, load_data,
                        pgd_linf)

HOMES = {"train": [TrainConfig], "runs": [get_or_train], "data": [load_data], "models": [build_model],
         "attacks": [pgd_linf, fgsm], "analysis": [analyze, load_artifact]}


def test_the_public_names_are_their_modules_objects():
    for module, objects in HOMES.items():
        home = importlib.import_module(f"arreg_core.{module}")
        for obj in objects:
            assert getattr(home, obj.__name__) is obj
    assert sorted(arreg_core.__all__) == sorted(obj.__name__ for objs in HOMES.values() for obj in objs)
    assert set(arreg_core.__all__) <= set(dir(arreg_core))


def test_other_names_are_submodules_or_an_attribute_error():
    from arreg_core import bound  # a submodule, not a re-exported name

    assert bound.__name__ == "arreg_core.bound"
    with pytest.raises(AttributeError, match="no attribute 'pgd'"):
        arreg_core.pgd


def test_every_module_is_listed_by_layer_in_the_docstring_and_the_readme():
    package = Path(arreg_core.__file__).parent
    readme = (package.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("\n## ")[0]
    for path in package.glob("*.py"):
        if path.stem != "__init__":
            assert re.search(rf"\b{path.stem}\b", arreg_core.__doc__), f"{path.stem} missing from arreg_core's docstring"
            assert f"`{path.stem}`" in layout, f"{path.stem} missing from README's Layout table"


def test_no_draft_marker_is_published():
    """Numbers still to be measured are drafted as ⟪FILL…⟫; none may reach main."""
    root = Path(arreg_core.__file__).resolve().parents[1]
    texts = [root / "README.md", *sorted((root / "book").glob("*.md")), *sorted((root / "notebooks").glob("*.ipynb")),
             root / "arreg_core" / "profiles.yaml"]
    assert not [p.name for p in texts if "⟪FILL" in p.read_text()]
