"""The scan cache: which (coin, model) states a batch reads, and the idle ones housekeeping lets go."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from itertools import count

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from alerts import tasks
from modelregistry.models import ActiveModel
from predictions import selectors
from predictions.models import CoinScanCache
from pumpserver import sql_arrays

pytestmark = pytest.mark.django_db


TRAINING_IDS = count(1)


def model(name: str, *, min_scan_interval_seconds: int) -> ActiveModel:
    return ActiveModel.objects.create(model_id=next(TRAINING_IDS), model_name=name, model_type="xgboost",
                                      features=["price_close"], min_scan_interval_seconds=min_scan_interval_seconds)


def state(coin: str, active_model: ActiveModel, *, scanned_ago: timedelta, ignore_for: timedelta | None = None):
    now = timezone.now()
    CoinScanCache.objects.create(coin_id=coin, active_model=active_model, last_scan_at=now - scanned_ago,
                                 ignore_until=None if ignore_for is None else now + ignore_for)


def test_a_batch_reads_the_states_that_hold_a_coin_back_now():
    every_row = model("every row", min_scan_interval_seconds=0)
    every_minute = model("every minute", min_scan_interval_seconds=60)
    state("window open", every_row, scanned_ago=timedelta(seconds=5), ignore_for=timedelta(minutes=5))
    state("window over", every_row, scanned_ago=timedelta(minutes=10), ignore_for=timedelta(minutes=-5))
    state("just scanned", every_row, scanned_ago=timedelta(seconds=5))
    state("just scanned", every_minute, scanned_ago=timedelta(seconds=5))
    state("scanned before", every_minute, scanned_ago=timedelta(minutes=2))
    state("window open", every_minute, scanned_ago=timedelta(minutes=2), ignore_for=timedelta(minutes=5))
    coins = ["window open", "window over", "just scanned", "scanned before", "never scanned"]

    def held_back(models):
        states = selectors.scan_states(mints=coins, model_ids=[m.pk for m in models], now=timezone.now(),
                                       min_scan_intervals=[m.min_scan_interval_seconds for m in models])
        return {(coin, model_id) for coin, model_id in states}

    assert held_back([every_row, every_minute]) == {
        ("window open", every_row.pk), ("just scanned", every_minute.pk), ("window open", every_minute.pk)}
    # Without a model that has a scan interval only the open windows are read.
    assert held_back([every_row]) == {("window open", every_row.pk)}


def test_open_windows_are_found_through_the_partial_index():
    """A busy table: many states, a few of them with a window (the index holds only those)."""
    models = [model(f"model {i}", min_scan_interval_seconds=0) for i in range(10)]
    now = timezone.now()
    CoinScanCache.objects.bulk_create(
        CoinScanCache(coin_id=f"coin {c}", active_model=m, last_scan_at=now,
                      ignore_until=now + timedelta(minutes=5) if c % 100 == 0 else None)
        for c in range(500) for m in models)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE coin_scan_cache")
        cursor.execute("EXPLAIN " + selectors.OPEN_IGNORE_WINDOWS_SQL, {
            "coins": sql_arrays.texts(f"coin {c}" for c in range(0, 500, 5)),
            "models": sql_arrays.values(m.pk for m in models), "now": now})
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "scan_cache_ignore_windows" in plan, plan


def test_housekeeping_deletes_idle_states_that_hold_nothing_back(settings):
    settings.SCAN_CACHE_RETENTION_DAYS = 7
    every_row = model("every row", min_scan_interval_seconds=0)
    every_day = model("every day", min_scan_interval_seconds=86400)
    state("idle", every_row, scanned_ago=timedelta(days=8))
    state("idle, window long over", every_row, scanned_ago=timedelta(days=9), ignore_for=timedelta(days=-8))
    state("idle, window still open", every_row, scanned_ago=timedelta(days=9), ignore_for=timedelta(days=1))
    state("idle, window over lately", every_row, scanned_ago=timedelta(days=9), ignore_for=timedelta(days=-6))
    state("scanned lately", every_row, scanned_ago=timedelta(days=6))
    state("idle", every_day, scanned_ago=timedelta(days=7.5))  # idle for 7 days only after its interval ended

    assert tasks.housekeeping()["scan_states_deleted"] == 2
    assert set(CoinScanCache.objects.values_list("coin_id", "active_model__model_name")) == {
        ("idle, window still open", "every row"), ("idle, window over lately", "every row"),
        ("scanned lately", "every row"), ("idle", "every day")}

    state("idle", every_row, scanned_ago=timedelta(days=8))
    out = StringIO()
    call_command("housekeeping", stdout=out)
    assert "1 idle scan states deleted" in out.getvalue()
    assert not CoinScanCache.objects.filter(coin_id="idle", active_model=every_row).exists()
