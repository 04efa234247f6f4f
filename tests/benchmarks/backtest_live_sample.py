"""The live path on a sample, for the backtest benchmark (bench_backtest.py), in a process of its own:

    python -m tests.benchmarks.backtest_live_sample MODEL_ID ROWS WARMUP_BATCHES   (DATABASE_URL: the bench database)

The newest ROWS rows of coin_metrics are taken out and put back batch by batch (one row per coin per batch, in time
order; a batch ends where a coin would repeat), each batch through `process_pending_batch` with the listener's
history cache and only model MODEL_ID active, as the listener would handle them. Prints one JSON line: rows, batches,
and the seconds and rows of the batches after WARMUP_BATCHES (the first ones load every coin's history and the
model)."""

from __future__ import annotations

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pumpserver.settings")
django.setup()

from django.conf import settings  # noqa: E402  (after django.setup)
from django.db import connection  # noqa: E402

from inference.history_cache import HistoryCache  # noqa: E402
from modelregistry.models import ActiveModel  # noqa: E402
from modelregistry.serving import model_cache  # noqa: E402
from predictions.services import process_pending_batch  # noqa: E402


def take_newest(rows: int) -> tuple[list[str], list[list]]:
    """The newest `rows` rows (all columns but id), in time order, deleted from coin_metrics."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM coin_metrics ORDER BY "timestamp" DESC, id DESC LIMIT %s', [rows])
        names = [column.name for column in cursor.description]
        taken = cursor.fetchall()[::-1]
        cursor.execute("DELETE FROM coin_metrics WHERE id = ANY(%s)", [[row[names.index("id")] for row in taken]])
        cursor.execute("TRUNCATE coin_metrics_queue")
    keep = [k for k, name in enumerate(names) if name != "id"]
    return [names[k] for k in keep], [[row[k] for k in keep] for row in taken]


def one_row_per_coin(columns: list[str], rows: list[list]) -> list[list[list]]:
    mint = columns.index("mint")
    batches, batch, seen = [], [], set()
    for row in rows:
        if row[mint] in seen:
            batches.append(batch)
            batch, seen = [], set()
        batch.append(row)
        seen.add(row[mint])
    return [*batches, batch]


def live_sample(active_model_id: int, rows: int, warmup: int) -> dict:
    active = list(ActiveModel.objects.filter(is_active=True).values_list("pk", flat=True))
    ActiveModel.objects.update(is_active=False)
    ActiveModel.objects.filter(pk=active_model_id).update(is_active=True)
    try:
        columns, taken = take_newest(rows)
        batches = one_row_per_coin(columns, taken)
        insert = f"INSERT INTO coin_metrics ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        cache = model_cache(size=settings.MODEL_CACHE_SIZE)
        histories = HistoryCache(limit=settings.FEATURE_HISTORY_SIZE)
        seconds = timed_rows = predictions = 0
        for number, batch in enumerate(batches):
            with connection.cursor() as cursor:
                cursor.executemany(insert, batch)
            began = time.perf_counter()
            report = process_pending_batch(limit=settings.BATCH_SIZE, cache=cache,
                                           history_limit=settings.FEATURE_HISTORY_SIZE, history_cache=histories)
            if number >= warmup:
                seconds += time.perf_counter() - began
                timed_rows += report.claimed
                predictions += len(report.stored)
    finally:
        ActiveModel.objects.update(is_active=False)
        ActiveModel.objects.filter(pk__in=active).update(is_active=True)
    return {"rows": len(taken), "batches": len(batches), "timed_batches": max(len(batches) - warmup, 0),
            "timed_rows": timed_rows, "predictions": predictions, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(live_sample(*(int(argument) for argument in sys.argv[1:4]))))
