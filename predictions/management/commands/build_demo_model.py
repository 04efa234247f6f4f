"""python manage.py build_demo_model [--coins N] [--rows N] [--seed N] [--max-rows N] [--out DIR]

Rebuilds the bundled demo model (modelregistry/demo_model/, see modelregistry/demo.py) from scratch: simulates a
market on the simulated clock (predictions/simulation.py, as `simulate_market` does), trains the demo model on it
with the built-in training, and writes the model file and its record to --out. Deterministic for one seed and
version of the simulator and the training.

It fills coin_metrics and registers a model, so it runs only on an empty database; use a scratch one, e.g.
`EMBEDDED_PGDATA=var/demo-build-pgdata python manage.py migrate && EMBEDDED_PGDATA=var/demo-build-pgdata python
manage.py build_demo_model`, then remove var/demo-build-pgdata.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from modelregistry.demo import BUNDLED_NAME, DEMO_ALERT_THRESHOLD, DEMO_MODEL_DIR, demo_training_config
from modelregistry.selectors import demo_models, model_artifact, other_models_exist
from modelregistry.training import TrainingDataError, train
from predictions.selectors import coin_metrics_summary

SIMULATED_START = "2025-01-01T00:00:00Z"


class Command(BaseCommand):
    help = "Rebuild the bundled demo model from a simulated market (on an empty scratch database only)."

    def add_arguments(self, parser):
        parser.add_argument("--coins", type=int, default=150, help="coins of the simulated market (default 150)")
        parser.add_argument("--rows", type=int, default=150_000, help="rows to simulate (default 150000)")
        parser.add_argument("--seed", type=int, default=2024, help="seed of the market (default 2024)")
        parser.add_argument("--max-rows", type=int, default=40_000, help="labelled rows to train on (default 40000)")
        parser.add_argument("--out", default=str(DEMO_MODEL_DIR), help="directory for model.json and meta.json")

    def handle(self, *args, coins: int, rows: int, seed: int, max_rows: int, out: str, **options):
        if coin_metrics_summary()["total"]:
            raise CommandError(
                "coin_metrics is not empty: build_demo_model fills it with a simulated market, so run it on an empty "
                "scratch database (EMBEDDED_PGDATA=var/demo-build-pgdata or DATABASE_URL)"
            )
        if demo_models() or other_models_exist():
            raise CommandError("the registry holds models: use an empty scratch database")
        simulated = StringIO()
        call_command(
            "simulate_market", coins=coins, rate=1_000_000, rows=rows, seed=seed, start=SIMULATED_START,
            stdout=simulated,
        )
        self.stdout.write(simulated.getvalue().strip().splitlines()[-1])
        try:
            result = train(demo_training_config(
                name=BUNDLED_NAME, max_rows=max_rows, alert_threshold=float(DEMO_ALERT_THRESHOLD), seed=seed,
            ))
        except TrainingDataError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(result.summary())

        content, fmt = model_artifact(active_model_id=result.model.pk)
        details = result.model.training_details or {}
        counts = result.counts
        meta = {
            **result.meta,
            "description": (
                f"The bundled demo model: trained by build_demo_model on {rows} rows of the simulated market "
                f"({coins} coins, seed {seed}), {counts['train_rows']} of them sampled for training and the "
                f"{counts['test_rows']} newest for testing."
            ),
            "training_details": {
                "builtin_training": details.get("builtin_training", {}),
                "bundled_build": {
                    "command": "manage.py build_demo_model",
                    "coins": coins,
                    "rows": rows,
                    "seed": seed,
                    "simulated_start": SIMULATED_START,
                    "max_rows": max_rows,
                },
            },
        }
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.json").write_bytes(content)
        (target / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        self.stdout.write(f"build_demo_model: wrote {target / 'model.json'} ({fmt}, {len(content)} bytes) and meta.json")

