# Two commands: `make run` and `make test`. Both set up .venv first (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
KEDRO := $(VENV)/bin/kedro
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.setup-stamp
export KEDRO_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg

.PHONY: setup run run-full test lint bench viz package clean-data

setup: $(STAMP)

# Re-installs only when the dependency declarations change. `make run` needs only the
# pipelines; everything else (audio, viz, tests) comes with `make setup` / `make test`.
# torch comes first, through pip (its configuration finds the CPU build on local disk; a
# range would pull a multi-GB CUDA build). The rest goes through uv, which resolves to the
# same pinned versions and installs them in parallel: seconds instead of two minutes.
# --no-compile: pip would byte-compile all of torch (21 s of a fresh install, against 9 s);
# Python compiles the modules a run imports, once, as uv leaves it to do for the rest.
UV_INSTALL := $(VENV)/bin/uv pip install --quiet --python $(PY) -c requirements/constraints.txt

$(RUN_STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile torch==2.13.0
	$(PY) -m pip install --quiet -c requirements/constraints.txt uv
	$(UV_INSTALL) -e ".[pipelines]"
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(UV_INSTALL) -e ".[pipelines,audio,viz,test]"
	touch $(STAMP)

# run: conf/base (+ conf/local); run-full: the full-budget set conf/full (the oracle as an
# ensemble). Both end by naming the bundle they exported.
run run-full: $(RUN_STAMP)
	$(KEDRO) run $(if $(filter run-full,$@),--env=full)
	@echo "Bundle: $$(ls -d data/09_export/*/ | sort | tail -n 1)"

test: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m benchmarks

# kedro-viz writes ./build, which setuptools uses too: move it out of the way.
viz: setup
	rm -rf build data/08_reporting/kedro_viz
	$(KEDRO) viz build --include-previews
	mv build data/08_reporting/kedro_viz
	@echo "Open data/08_reporting/kedro_viz/index.html (or serve it: python -m http.server -d data/08_reporting/kedro_viz)"

package: setup
	rm -rf build dist
	$(KEDRO) package
	rm -rf build
