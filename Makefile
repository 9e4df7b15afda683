# Two commands do all the set-up (README): `make test` and `make book`.
# Each creates or refreshes the virtual environment .venv itself, idempotently.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arreg-installed

.PHONY: test book venv clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

book: $(STAMP)
	@echo "make book: the book (notebooks, profiles, Jupyter Book build) is not built yet: see issue 4." >&2
	@exit 2

clean-venv:
	rm -rf $(VENV)
