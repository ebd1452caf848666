# Cleave — developer entry points. Every target creates the virtualenv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# gunicorn: worker processes of one thread each (see bench/README.md, "Checkout saga")
WORKERS ?= 4
THREADS ?= 1
STAMP := $(VENV)/.installed

.PHONY: install run serve migrate seed test test-fast lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate_all --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

## Set up and run the whole system on the embedded default at http://$(HOST):$(PORT)
run: seed
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/gunicorn -c python:config.gunicorn config.wsgi --bind $(HOST):$(PORT) \
		--workers $(WORKERS) --threads $(THREADS) \
		--access-logfile - --timeout 60

## Set up and run the test suite (and the boundary and lint checks)
test: lint
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -x -q

lint: install
	$(BIN)/lint-imports --config importlinter.ini
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
