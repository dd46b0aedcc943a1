# SEAM Studio. `make demo` builds and serves the offline demo; `make test` runs the tests.
# Both create .venv in the repo root first (idempotent: near-instant when already done).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.seam-setup-done
PYTEST_ARGS ?=

.PHONY: setup test test-all demo serve bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m seam.assets fetch
	$(PY) -m seam.textattack_env
	$(PY) -m pip check
	@touch $(STAMP)

# PASSIVE: OpenMP threads sleep instead of spinning between the many small torch ops in tests.
test: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q $(PYTEST_ARGS)

test-all: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q --runslow $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/seam demo

serve: setup
	$(VENV)/bin/seam serve

bench: setup
	$(PY) benchmarks/score_bench.py

clean-venv:
	rm -rf $(VENV)
