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

# make run-split: groups of contexts, separated by spaces (empty: one group per context)
SPLIT ?=

.PHONY: install constraints run run-split nginx serve migrate seed test test-fast lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## Pin every runtime dependency again (constraints.txt), resolved afresh from pyproject.toml
constraints:
	rm -rf $(VENV)-constraints
	$(PYTHON) -m venv $(VENV)-constraints || python3 -m venv $(VENV)-constraints
	$(VENV)-constraints/bin/python -m pip install --quiet '.[consul]'
	{ printf '%s\n' \
		'# Every runtime dependency of Cleave (and its optional extra consul), pinned:' \
		'# what the image installs (deploy/docker/Dockerfile) and `make install` uses, so' \
		'# the tests run the versions that ship. Regenerate with `make constraints`.'; \
	  $(VENV)-constraints/bin/python -m pip freeze --exclude cleave; } > constraints.txt
	rm -rf $(VENV)-constraints

migrate: install
	$(BIN)/python manage.py migrate_all --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

## Set up and run the whole system on the embedded default at http://$(HOST):$(PORT)
run: seed
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/gunicorn -c python:config.gunicorn config.wsgi --bind $(HOST):$(PORT) \
		--workers $(WORKERS) --threads $(THREADS) --timeout 60

## Run every context as its own process group (web, worker, relay) behind an nginx
## gateway at http://$(HOST):$(PORT); needs RabbitMQ (CELERY_BROKER_URL) and nginx
run-split: install nginx
	$(BIN)/python manage.py run_split --port $(PORT) --layout "$(SPLIT)"

## nginx for the gateway: installed from Debian's packages when missing (as root)
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get install -y -q nginx-light >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; }; \
		else \
			echo "The gateway needs nginx: sudo apt-get install nginx-light (Debian, Ubuntu)," \
				"or your system's nginx package." >&2; exit 2; \
		fi; }

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
	$(BIN)/python manage.py deploy check
	$(BIN)/python manage.py configuration --check
	$(BIN)/python manage.py contracts openapi --check
	$(BIN)/python manage.py contracts verify
	$(BIN)/python manage.py contracts lock --check
	$(BIN)/python manage.py contracts versions --check
	$(BIN)/python manage.py contracts map --check

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
