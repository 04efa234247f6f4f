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
web_pid=$!
start "$PY" manage.py listen_events
start "$PY" manage.py qcluster
start "$PY" manage.py simulate_market --coins "${DEMO_COINS:-100}" --rate "${DEMO_RATE:-50}" --duration "${DEMO_DURATION:-86400}" --realtime --seed "${DEMO_SEED:-$RANDOM}"
# The bundled demo model serves from the start; once the demo market has produced enough rows, a model trained on
# them replaces it if it ranks well (one-shot; started outside the job table so that its exit does not end the run;
# it stops waiting when this script ends).
( "$PY" manage.py train_demo_model --wait "${DEMO_TRAIN_WAIT:-10800}" --stop-with "$$" & )

# The login box comes last, once the web server accepts connections, so that start-up output does not bury it.
probe_host=$HOST url_host=$HOST
case $HOST in 0.0.0.0 | "::" | "") probe_host=127.0.0.1 url_host=localhost ;; esac
for _ in $(seq 1 240); do
  kill -0 "$web_pid" 2>/dev/null || break
  (exec 3<>"/dev/tcp/$probe_host/$PORT") 2>/dev/null && break
  sleep 0.25
done
if (exec 3<>"/dev/tcp/$probe_host/$PORT") 2>/dev/null; then
  sleep 1  # let the other processes print their start-up lines first
  "$PY" manage.py login_box --url "http://$url_host:$PORT/" || true
else
  echo "Pump Server: the web server is not answering on $HOST:$PORT (is the port taken? make run PORT=8123)" >&2
fi
wait -n
