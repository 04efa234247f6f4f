"""python manage.py train_demo_model [--wait SECONDS] [--poll SECONDS] [--min-rows N] [--min-roc-auc A]
[--stop-with PID]

`make run` starts with the bundled demo model (ensure_demo_model; see modelregistry/demo.py). This command trains
the same kind of model on the running market's own data and serves it instead: it waits (up to --wait seconds)
until coin_metrics holds --min-rows labelled rows, trains with train_model's code, and if the model's ROC AUC on its
test window (the newest quarter of the rows) is at least --min-roc-auc, activates it, deactivates the bundled model
and records why in the new model's training_details["demo"]; otherwise it deletes the model again and tries once
more after --retry-after seconds with the data that arrived meanwhile. It does nothing when the registry holds a
model that is not the demo's (an imported, uploaded or trained model wins) or a demo model trained here already.
"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand

from modelregistry.demo import DEMO_ALERT_THRESHOLD, DEMO_MIN_ROC_AUC, ROLE_TRAINED, demo_training_config
from modelregistry.demo_services import serve_trained_demo_model
from modelregistry.selectors import demo_models, other_models_exist
from modelregistry.services import delete_model
from modelregistry.training import TrainingDataError, TrainingResult, train
from modelregistry.training.config import alert_sentence


class Command(BaseCommand):
    help = "Train a demo model on this market's data once enough rows exist and serve it if it ranks well."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=0, help="keep trying this many seconds (default: once)")
        parser.add_argument("--poll", type=float, default=30, help="seconds between checks for data (default 30)")
        parser.add_argument("--min-rows", type=int, default=6000, help="labelled rows needed (default 6000)")
        parser.add_argument(
            "--min-roc-auc", type=float, default=DEMO_MIN_ROC_AUC,
            help=f"serve the model only from this ROC AUC on its test window (default {DEMO_MIN_ROC_AUC})",
        )
        parser.add_argument(
            "--retry-after", type=float, default=600, help="seconds before training again after a weak model (600)"
        )
        parser.add_argument("--stop-with", type=int, help="stop waiting when this process has ended (make run's pid)")

    def handle(self, *args, wait: float, poll: float, min_rows: int, min_roc_auc: float, retry_after: float,
             stop_with: int | None = None, **options):
        deadline = time.monotonic() + max(0.0, wait)
        config = demo_training_config(min_rows=min_rows, alert_threshold=float(DEMO_ALERT_THRESHOLD))
        announced_at = None
        while True:
            if other_models_exist():
                self.say("the registry holds a model of its own; no demo model trained.")
                return
            if any((m.training_details or {}).get("demo", {}).get("role") == ROLE_TRAINED for m in demo_models()):
                self.say("a demo model was trained on this market already; nothing to do.")
                return
            pause = poll
            try:
                result = train(config)
            except TrainingDataError as exc:
                if announced_at is None or time.monotonic() - announced_at >= 300:  # at most every five minutes
                    self.say(f"waiting for market data ({exc}); checking every {poll:g} s")
                    announced_at = time.monotonic()
            else:
                if self.serve_if_good(result, min_roc_auc):
                    return
                pause = retry_after
            if time.monotonic() + pause > deadline:
                self.say("gave up: no demo model good enough to serve yet; the bundled model keeps serving.")
                return
            until = time.monotonic() + pause
            while time.monotonic() < until:
                if stop_with and not _alive(stop_with):  # `make run` ended: stop with it
                    return
                time.sleep(min(1.0, max(0.0, until - time.monotonic())))

    def serve_if_good(self, result: TrainingResult, min_roc_auc: float) -> bool:
        auc = result.metrics["roc_auc"]
        counts = result.counts
        if auc is None or auc < min_roc_auc:
            delete_model(active_model_id=result.model.pk)
            self.say(
                f"the model trained on {counts['train_rows']} rows reached ROC AUC "
                f"{'n/a' if auc is None else f'{auc:.3f}'} on its test window, below {min_roc_auc:g}: deleted it; "
                "the bundled model keeps serving and training runs again with more data."
            )
            return False
        replaced = [m.pk for m in demo_models() if m.is_active and m.pk != result.model.pk]
        reason = (
            f"trained here by train_demo_model on {counts['train_rows']} rows of this market and tested on the "
            f"{counts['test_rows']} newest: ROC AUC {auc:.3f} (at least {min_roc_auc:g} needed to replace the "
            f"bundled model). {alert_sentence(result.test_alerts)}"
        ).strip()
        model = serve_trained_demo_model(trained_model_id=result.model.pk, replaced_model_ids=replaced, reason=reason)
        result.model = model
        self.say(result.summary().replace("\n", " "))
        self.say(f"serving '{model.display_name}' (#{model.pk}); {len(replaced)} bundled demo model(s) deactivated.")
        return True

    def say(self, message: str) -> None:
        self.stdout.write(f"train_demo_model: {message}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
