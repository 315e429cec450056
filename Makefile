# Two commands on a fresh machine:  `make labs` (both labs headless)  and  `make test`.
# Each creates .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: labs test env sysdeps clean-venv

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sim,test]'
	$(PY) -m ipykernel install --user --name labhelpers --display-name "Python (labhelpers)" >/dev/null
	touch $(STAMP)

# Debian tools the project runs: bubblewrap jails the kernel that re-runs a submission (grade, its tests);
# yosys synthesizes the hardware designs (labhelpers.hardware, `python -m labhelpers hardware`).
# Installed when missing and we are root (as .ci/run does for PostgreSQL); otherwise one line says how.
sysdeps:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing bubblewrap (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap is missing: sudo apt-get install bubblewrap (the grader jails submissions with it)" >&2; fi; }
	@command -v yosys >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing yosys (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yosys >/dev/null; \
	  else echo "yosys is missing: sudo apt-get install yosys (labhelpers.hardware synthesizes with it)" >&2; fi; }

labs: $(STAMP)
	$(PY) -m labhelpers run-labs $(ARGS)

test: $(STAMP) sysdeps
	$(PY) -m pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
