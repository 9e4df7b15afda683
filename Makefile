# Two commands do all the set-up (README): `make test` and `make book`.
# Each creates or refreshes the virtual environment .venv itself, idempotently.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arreg-installed

.PHONY: test book venv clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,book,cluster]'
	@# benchmark-only: torchattacks pins requests~=2.25 (for downloads it never makes here), which would
	@# downgrade what Sphinx needs; installed without its dependencies (all already present)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps torchattacks==3.5.1
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

book: $(STAMP)
	$(VENV)/bin/arreg book --profile cpu

clean-venv:
	rm -rf $(VENV)
