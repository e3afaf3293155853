# Two commands on a fresh machine: `make run` and `make test`.
#
# Every installed version is locked, with hashes, in requirements/*.txt (compiled by `make lock`
# from requirements/*.in). `make run` installs the runtime lock only; `make test`, `make lint`
# and `make typecheck` the development lock (the runtime lock plus the tests and the tooling);
# `make notebook` the notebook lock (the runtime lock plus Jupyter Lab).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
REQ := requirements
# One stamp per lock, each newer than the files it was installed from.
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
NOTEBOOK := $(VENV)/.notebook-installed

.PHONY: install install-dev run sandbox test bench notebook lint typecheck format lock clean

# The runtime: make the venv if missing; install pip and setuptools from the bootstrap lock, then
# the runtime lock (hash-checked: every package pinned, every file verified), then this package:
# editable, built by the locked setuptools (no build isolation: nothing unlocked is downloaded).
$(RUNTIME): $(REQ)/bootstrap.txt $(REQ)/runtime.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(REQ)/bootstrap.txt
	$(PY) -m pip install --quiet --require-hashes -r $(REQ)/runtime.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

# On top of the runtime: dev.txt and notebook.txt repeat the runtime lock at the same versions
# (so each is complete on its own) and add their tools. `make run` after `make test` installs
# nothing: the runtime stamp is already newer than its locks.
$(DEV): $(RUNTIME) $(REQ)/dev.txt
	$(PY) -m pip install --quiet --require-hashes -r $(REQ)/dev.txt
	touch $@

$(NOTEBOOK): $(RUNTIME) $(REQ)/notebook.txt
	$(PY) -m pip install --quiet --require-hashes -r $(REQ)/notebook.txt
	touch $@

install: $(RUNTIME)

install-dev: $(DEV)

run: $(RUNTIME)
	$(PY) -m toolkit.ui.serve

sandbox: $(RUNTIME)
	$(PY) -m toolkit.sandbox --seed-demo

test: $(DEV)
	$(PY) -m pytest

bench: $(RUNTIME)
	$(PY) -m benchmarks

notebook: $(NOTEBOOK)
	$(VENV)/bin/jupyter lab notebooks/

# ruff (lint and format) over the tree, strict mypy over toolkit/ (config in pyproject.toml).
lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

typecheck: $(DEV)
	$(VENV)/bin/mypy

format: $(DEV)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Recompile the locks after editing requirements/*.in; existing pins are kept where they still
# fit. `make lock UPGRADE=1` also moves every unpinned (transitive) package to its newest
# release. Resolved on this venv's interpreter: CPython 3.11 on Linux x86_64.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade)

lock: $(DEV)
	$(PIP_COMPILE) --output-file $(REQ)/bootstrap.txt $(REQ)/bootstrap.in
	$(PIP_COMPILE) --output-file $(REQ)/runtime.txt $(REQ)/runtime.in
	$(PIP_COMPILE) --output-file $(REQ)/dev.txt $(REQ)/dev.in
	$(PIP_COMPILE) --output-file $(REQ)/notebook.txt $(REQ)/notebook.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts
