"""python manage.py train_demo_model [--wait SECONDS] [--poll SECONDS] [--min-rows N] [--stop-with PID]

`make run` starts with the bundled fixture model (ensure_demo_model). This command replaces it with a model
trained on the running demo market's own data: it waits (up to --wait seconds) until coin_metrics holds enough
labelled rows, trains a small XGBoost model (100 trees, price_close +5 % within 2 min) with train_model's code,
activates it, deactivates the fixture model and exits. It does nothing when the registry holds any model other
than the fixture one (an imported, uploaded or trained model wins), and gives up quietly after --wait.
"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand

from modelregistry.demo import demo_model_meta
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import deactivate_model
from modelregistry.training import TrainingConfig, TrainingDataError, train

DEMO_NAME = "demo: +5% in 2 min (XGBoost, trained on this market)"


def _fixture_demo_models():
    return ActiveModel.objects.filter(
        model_name=demo_model_meta()["name"], source=ModelSource.COMMAND_LINE, model_id__isnull=True
    )


def _other_models_exist() -> bool:
    return ActiveModel.objects.exclude(pk__in=_fixture_demo_models().values("pk")).exists()


class Command(BaseCommand):
    help = "Train and activate a demo model on this market's data once enough rows exist (for make run)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=0, help="keep trying this many seconds (default: once)")
        parser.add_argument("--poll", type=float, default=10, help="seconds between attempts (default 10)")
        parser.add_argument("--min-rows", type=int, default=300, help="labelled rows needed (default 300)")
        parser.add_argument("--stop-with", type=int, help="stop waiting when this process has ended (make run's pid)")

    def handle(self, *args, wait: float, poll: float, min_rows: int, stop_with: int | None = None, **options):
        deadline = time.monotonic() + max(0.0, wait)
        config = TrainingConfig(
            model_type="xgboost", future_minutes=2, min_percent_change=5.0, direction="up", n_estimators=100,
            max_depth=4, max_rows=5000, min_rows=min_rows, name=DEMO_NAME, activate=True,
        )
        announced_at = None
        while True:
            if _other_models_exist():
                self.stdout.write("train_demo_model: the registry holds a model of its own; no demo model trained.")
                return
            try:
                result = train(config)
                break
            except TrainingDataError as exc:
                if time.monotonic() + poll > deadline:
                    self.stdout.write(f"train_demo_model: gave up, not enough market data yet: {exc}")
                    return
                if announced_at is None or time.monotonic() - announced_at >= 60:  # at most once a minute
                    self.stdout.write(f"train_demo_model: waiting for market data ({exc}); retrying every {poll:g} s")
                    announced_at = time.monotonic()
            until = time.monotonic() + poll
            while time.monotonic() < until:
                if stop_with and not _alive(stop_with):  # `make run` ended: stop with it
                    return
                time.sleep(min(1.0, max(0.0, until - time.monotonic())))

        replaced = list(_fixture_demo_models().filter(is_active=True).values_list("pk", flat=True))
        for pk in replaced:
            deactivate_model(active_model_id=pk)
        self.stdout.write("train_demo_model: " + result.summary().replace("\n", " "))
        if replaced:
            self.stdout.write("train_demo_model: the bundled fixture demo model is now inactive.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
