# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-dev lint format bench bench-backlog chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	mkdir -p var
	$(BIN)/billhook db upgrade
	$(BIN)/billhook seed
	# Prometheus multiprocess mode: gunicorn and Celery processes write their metrics here and
	# web's /metrics adds them up; emptied at each start (files of dead processes would linger).
	rm -rf var/prometheus && mkdir -p var/prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus $(BIN)/honcho start --procfile Procfile --port $(PORT)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks and the chaos run start their own servers (see README, "Benchmarks" and "Chaos").
bench: install-dev
	$(BIN)/python -m bench
	$(BIN)/python -m bench.cpu

# 100,000 queued events drained with the worker's memory sampled every second (BENCH_BACKLOG_EVENTS).
bench-backlog: install-dev
	$(BIN)/python -m bench.backlog

chaos: install-dev
	$(BIN)/python -m bench.chaos

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
