#!/usr/bin/env bash
# Starts every process of the system in the foreground for a local demo; Ctrl-C stops them all.
# The same processes as deploy/Procfile, plus the demo market that plays the collector.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

# Metrics files of earlier runs would be summed into this run's counters.
rm -rf var/metrics && mkdir -p var/metrics

pids=()
stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop_all INT TERM EXIT

start() { "$@" & pids+=($!); }

start "$PY" -m daphne -b "$HOST" -p "$PORT" pumpserver.asgi:application
start "$PY" manage.py listen_events
start "$PY" manage.py qcluster
start "$PY" manage.py simulate_market --coins "${DEMO_COINS:-60}" --rate "${DEMO_RATE:-50}" --duration "${DEMO_DURATION:-86400}" --realtime --seed "${DEMO_SEED:-$RANDOM}"
# Once the demo market has enough rows, a model trained on them replaces the bundled fixture model (one-shot; started
# outside the job table so that its exit does not end the run; it stops waiting when this script ends).
( "$PY" manage.py train_demo_model --wait "${DEMO_TRAIN_WAIT:-900}" --stop-with "$$" & )

echo "Pump Server: http://$HOST:$PORT/ (pages), /admin/, /api/docs/  (Ctrl-C stops everything)"
wait -n
