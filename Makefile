# Two commands on a fresh machine:  `make labs` (both labs headless)  and  `make test`.
# Each creates .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: labs test env clean-venv

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sim]'
	$(PY) -m ipykernel install --user --name labhelpers --display-name "Python (labhelpers)" >/dev/null
	touch $(STAMP)

labs: $(STAMP)
	$(PY) -m labhelpers run-labs $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
