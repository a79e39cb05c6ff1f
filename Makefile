# Tally — the two commands a newcomer needs are `make run` and `make test`.
HOST ?= 127.0.0.1
PORT ?= 8080
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# `make test` runs pytest in xdist workers, one per core (2 on this kind of machine; more
# measured slower here, the suite is mostly CPU-bound on 2 cores), at most 4: much of it
# waits on real processes (servers, terraform, chromium, the Bigtable emulator).
# worksteal: an idle worker takes half of a busy one's queue, so a run of long e2e tests
# does not leave one worker busy at the end. Not loadgroup/loadscope: they key tests by node
# id, and under pytest 9 schemathesis gives every operation's test the same id, so all but
# one would not run. PYTEST_XDIST= (empty) runs serially, as plain `pytest` does.
PYTEST_XDIST ?= -n auto --maxprocesses 4 --dist worksteal
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION ?= >=3.3.30,<4

.PHONY: run dev test lint fmt pytest bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-install only when pyproject.toml changes or a top-level package appears
# (the editable install maps package names to directories when it is made).
PACKAGES := $(wildcard */__init__.py)

$(VENV)/.stamp-run: pyproject.toml $(PACKAGES) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(PACKAGES) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,infra]'
	touch $@ $(VENV)/.stamp-run

# checkov in a venv of its own: its pins clash with pytest's (see pyproject.toml).
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov$(CHECKOV_VERSION)'

run: $(VENV)/.stamp-run
	$(BIN)/tally serve --host $(HOST) --port $(PORT)

# The dev loop: the same server, restarted on every source change (SQLite under ./data).
dev: $(VENV)/.stamp-run
	$(BIN)/tally serve --host $(HOST) --port $(PORT) --reload

fmt: $(VENV)/.stamp-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collected nothing; that must fail, not pass.
pytest: $(VENV)/.stamp-dev $(CHECKOV_VENV)/bin/checkov
	@$(BIN)/pytest $(PYTEST_XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test: lint pytest

$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bench,bigtable]'
	touch $@

# Not part of `make test`. Needs wrk and redis-server/redis-benchmark (bench.run says how
# to install them) and a quiet machine; BENCH_ARGS e.g. "--only strict,spread --duration 5",
# "--skip spread" or "--workers 2".
bench: $(VENV)/.stamp-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Re-resolve every dependency after editing pyproject.toml: uv.lock pins all extras
# (tests check it is current: `uv lock --check`), requirements.lock is what the image
# installs (base dependencies, the bigtable extra and the build backend, with hashes).
# Needs the index.
lock: $(VENV)/.stamp-dev
	$(BIN)/uv lock --quiet
	$(BIN)/uv export --quiet --frozen --no-default-groups --group build --extra bigtable --no-emit-project \
		--format requirements-txt --output-file requirements.lock

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache
