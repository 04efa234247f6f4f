"""The worker's schedules (created by migrate) and the task functions they run."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from prometheus_client import REGISTRY

from alerts import tasks
from alerts.schedules import recurring_jobs
from predictions.models import ModelPrediction, WebhookLog
from tests.test_evaluation import price, time_model

pytestmark = pytest.mark.django_db


def test_migrating_twice_leaves_one_schedule_per_job():
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)

    names = list(Schedule.objects.values_list("name", flat=True))
    assert sorted(names) == sorted(job.name for job in recurring_jobs())
    evaluate = Schedule.objects.get(name="evaluate-predictions")
    assert (evaluate.func, evaluate.schedule_type, evaluate.repeats) == (
        "alerts.tasks.evaluate_and_track", Schedule.CRON, -1)
    assert Schedule.objects.get(name="housekeeping").func == "alerts.tasks.housekeeping"


@pytest.mark.parametrize(("seconds", "cron"), [(30, "* * * * * */30"), (10, "* * * * * */10"),
                                               (120, "*/2 * * * *"), (60, "*/1 * * * *")])
def test_the_evaluation_cron_follows_the_interval_setting(settings, seconds, cron):
    settings.EVALUATION_INTERVAL_SECONDS = seconds

    call_command("migrate", verbosity=0)

    assert Schedule.objects.get(name="evaluate-predictions").cron == cron
    assert Schedule.objects.filter(name="evaluate-predictions").count() == 1


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_evaluate_and_track_tracks_then_judges_and_counts(market):
    now = timezone.now()
    model = time_model()
    open_row = ModelPrediction.objects.create(
        coin_id="open", active_model=model, prediction=1, probability=0.9, tag="alert",
        prediction_timestamp=now - timedelta(minutes=2), evaluation_timestamp=now + timedelta(minutes=8),
        price_close_at_prediction=Decimal("1"))
    due_row = ModelPrediction.objects.create(
        coin_id="due", active_model=model, prediction=1, probability=0.9, tag="alert",
        prediction_timestamp=now - timedelta(minutes=12), evaluation_timestamp=now - timedelta(minutes=2),
        price_close_at_prediction=Decimal("1"))
    price(market, "open", now - timedelta(minutes=1), 1.3)
    price(market, "due", now - timedelta(minutes=3), 1.2)
    successes = sample("ml_evaluations_total", result="success")
    ath_updates = sample("ml_ath_updates_total")
    runs = sample("ml_evaluation_run_seconds_count")

    outcome = tasks.evaluate_and_track()

    assert outcome == {"ath_updates": 1, "success": 1, "failed": 0, "not_applicable": 0, "more_due": False}
    open_row.refresh_from_db()
    due_row.refresh_from_db()
    assert (open_row.status, open_row.ath_highest_pct) == ("aktiv", 30)
    assert (due_row.status, due_row.evaluation_result) == ("inaktiv", "success")
    assert sample("ml_evaluations_total", result="success") == successes + 1
    assert sample("ml_ath_updates_total") == ath_updates + 1
    assert sample("ml_evaluation_run_seconds_count") == runs + 1


def test_housekeeping_deletes_webhook_logs_past_the_retention(settings):
    settings.WEBHOOK_LOG_RETENTION_DAYS = 7
    now = timezone.now()
    for age_days in (8, 6):
        log = WebhookLog.objects.create(coin_id=f"age{age_days}", webhook_url="http://n8n/hook", response_status=200)
        WebhookLog.objects.filter(pk=log.pk).update(created_at=now - timedelta(days=age_days))

    report = tasks.housekeeping()
    assert (report["webhook_log_deleted"], report["audit_entries_deleted"]) == (1, 0)
    assert report["partitions_dropped"] == []  # no retention set: predictions are kept (tests/test_partitions.py)
    assert list(WebhookLog.objects.values_list("coin_id", flat=True)) == ["age6"]
