"""Reads of market data and prediction state, each one query for a whole listener batch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.db import connection
from django.db.models import Avg, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone as django_timezone

from modelregistry.models import ActiveModel, ModelArtifact
from predictions.demo_services import SIMULATED_MARKET_KEY
from predictions.models import DeliveryStatus, ModelPrediction, Tag, WebhookDelivery, WebhookLog
from pumpserver import config, sql_arrays
from pumpserver.models import RuntimeSetting

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

SNAPSHOT_SQL = """
SELECT ev.mint, s.price_close, s.price_open, s.price_high, s.price_low, s.market_cap_close, s.volume_sol,
       s.phase_id_at_time
  FROM unnest(%s::text[], %s::timestamptz[]) AS ev(mint, ts)
 CROSS JOIN LATERAL (
       SELECT * FROM coin_metrics m
        WHERE m.mint = ev.mint AND m."timestamp" <= ev.ts
        ORDER BY m."timestamp" DESC LIMIT 1
 ) s
"""


def price_snapshots(*, events: list[tuple[str, datetime]]) -> dict[str, tuple]:
    """Per coin, its newest row at or before the event time: (close, open, high, low, market cap, volume, phase)."""
    if not events:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(SNAPSHOT_SQL, [[m for m, _ in events], [t for _, t in events]])
        return {row[0]: row[1:] for row in cursor.fetchall()}


# The pairs of a batch that an ignore window holds back now: through the partial index on the windows.
OPEN_IGNORE_WINDOWS_SQL = """
SELECT coin_id, active_model_id, ignore_until, last_scan_at
  FROM coin_scan_cache
 WHERE coin_id = ANY(%(coins)s::text[]) AND ignore_until IS NOT NULL AND ignore_until > %(now)s
   AND active_model_id = ANY(%(models)s::bigint[])
"""
# … and, for models with a minimum scan interval, the pairs scanned within it.
RECENT_SCANS_SQL = """
SELECT c.coin_id, c.active_model_id, c.ignore_until, c.last_scan_at
  FROM coin_scan_cache c
  JOIN unnest(%(interval_models)s::bigint[], %(intervals)s::int[]) AS m(id, min_interval) ON m.id = c.active_model_id
 WHERE c.coin_id = ANY(%(coins)s::text[])
   AND c.last_scan_at > %(now)s::timestamptz - m.min_interval * interval '1 second'
"""


def scan_states(
    *, mints: list[str], model_ids: list[int], now: datetime, min_scan_intervals: list[int]
) -> dict[tuple[str, int], tuple[datetime | None, datetime]]:
    """(coin, model) → (ignore_until, last_scan_at) of the pairs of a batch that an ignore window or the model's
    minimum scan interval (`min_scan_intervals`, in the order of `model_ids`) holds back at `now`.

    The other pairs would not change what the engine's filter decides, so they are not read: a busy batch reads a
    handful of rows instead of one per coin and model, and when no model has a scan interval (every row predicted)
    only the open ignore windows.
    """
    if not mints or not model_ids:
        return {}
    params = {"coins": sql_arrays.texts(mints), "models": sql_arrays.values(model_ids), "now": now}
    with_interval = [(model, interval) for model, interval in zip(model_ids, min_scan_intervals) if interval]
    with connection.cursor() as cursor:
        cursor.execute(OPEN_IGNORE_WINDOWS_SQL, params)
        rows = cursor.fetchall()
        if with_interval:
            cursor.execute(RECENT_SCANS_SQL, {
                **params, "interval_models": sql_arrays.values(model for model, _ in with_interval),
                "intervals": sql_arrays.values(interval for _, interval in with_interval),
            })
            rows += cursor.fetchall()
    return {(coin, model): (until, scanned) for coin, model, until, scanned in rows}


def pending_tag_counts(*, mints: list[str], model_ids: list[int]) -> dict[tuple[int, str, str], int]:
    """(model, coin, tag) → number of pending predictions, for the max-log caps."""
    if not mints or not model_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT active_model_id, coin_id, tag, count(*) FROM model_predictions "
            "WHERE status = 'aktiv' AND active_model_id = ANY(%(models)s) AND coin_id = ANY(%(mints)s::text[]) "
            "AND coin_key = ANY(ARRAY(SELECT hashtextextended(m, 0) FROM unnest(%(mints)s::text[]) m)) "
            "GROUP BY 1, 2, 3",
            {"mints": sql_arrays.texts(mints), "models": model_ids},
        )
        return {(model, coin, tag): count for model, coin, tag, count in cursor.fetchall()}


QUEUE_DEPTH_CAP = 100_000  # queued rows are counted up to this many: a bounded index scan, however long the queue


def queue_depth() -> int:
    """Queued coin_metrics rows, counted up to QUEUE_DEPTH_CAP (the listener's gauge, the dashboard, health)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM coin_metrics_queue LIMIT %s) AS q", [QUEUE_DEPTH_CAP])
        return cursor.fetchone()[0]


# --- reads for the pages (dashboard, model details, webhooks) -----------------------------------------------------

_BUCKET_SQL = "to_timestamp(floor(extract(epoch FROM {column}) / %s) * %s)"


def bucket_starts(start: datetime, end: datetime, bucket_seconds: int) -> list[datetime]:
    """Starts of the buckets of `bucket_seconds` (aligned to the epoch, in UTC) that cover [start, end]."""
    first = _EPOCH + timedelta(seconds=((start - _EPOCH) // timedelta(seconds=bucket_seconds)) * bucket_seconds)
    starts, moment = [], first
    while moment <= end:
        starts.append(moment)
        moment += timedelta(seconds=bucket_seconds)
    return starts


def predictions_per_minute(*, minutes: int = 60, now: datetime | None = None) -> list[dict]:
    """Predictions and alerts stored per minute over the last `minutes` minutes (by insert time), oldest first.

    Every minute is present (zeros included); the newest bucket is the current, still running minute. One range scan
    of the created_at index.
    """
    now = now or django_timezone.now()
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('minute', created_at) AS minute, count(*), count(*) FILTER (WHERE tag = 'alert') "
            "FROM model_predictions WHERE created_at >= %s GROUP BY 1",
            [start],
        )
        counted = {minute: (total, alerts) for minute, total, alerts in cursor.fetchall()}
    return [
        {"minute": minute, "predictions": counted.get(minute, (0, 0))[0], "alerts": counted.get(minute, (0, 0))[1]}
        for minute in bucket_starts(start, now, 60)
    ]


def first_prediction_time(*, active_model_id: int | None = None) -> datetime | None:
    """When the first prediction was stored (created_at); for one model, the data time of its first prediction
    (prediction_timestamp). The time axes of the dashboard and the model page start there on a young system.
    One probe of the created_at or (active_model, prediction_timestamp) index."""
    if active_model_id is None:
        return ModelPrediction.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return (
        ModelPrediction.objects.filter(active_model_id=active_model_id)
        .order_by("prediction_timestamp").values_list("prediction_timestamp", flat=True).first()
    )


def prediction_timeline(*, active_model_id: int, start: datetime, end: datetime, bucket_seconds: int) -> list[dict]:
    """One model's predictions per time bucket (by data time) and tag: [{bucket, negativ, positiv, alert}]."""
    return _model_counts_per_bucket(
        active_model_id=active_model_id, start=start, end=end, bucket_seconds=bucket_seconds, alerts_only=False,
        counts={"negativ": "tag = 'negativ'", "positiv": "tag = 'positiv'", "alert": "tag = 'alert'"},
    )


def verdict_timeline(*, active_model_id: int, start: datetime, end: datetime, bucket_seconds: int) -> list[dict]:
    """One model's alerts per time bucket (by data time) and verdict: [{bucket, success, failed, not_applicable,
    pending}]."""
    return _model_counts_per_bucket(
        active_model_id=active_model_id, start=start, end=end, bucket_seconds=bucket_seconds, alerts_only=True,
        counts={"success": "evaluation_result = 'success'", "failed": "evaluation_result = 'failed'",
                "not_applicable": "evaluation_result = 'not_applicable'", "pending": "status = 'aktiv'"},
    )


def _model_counts_per_bucket(
    *, active_model_id: int, start: datetime, end: datetime, bucket_seconds: int, alerts_only: bool,
    counts: dict[str, str],
) -> list[dict]:
    """Every bucket from start to end (zeros included) with each named count: the model's predictions (or only its
    alerts) in the bucket that meet the count's SQL condition."""
    columns = ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in counts.values())
    alerts = "AND tag = 'alert' " if alerts_only else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_BUCKET_SQL.format(column='prediction_timestamp')} AS bucket, {columns} "
            f"FROM model_predictions WHERE active_model_id = %s {alerts}AND prediction_timestamp >= %s "
            "AND prediction_timestamp <= %s GROUP BY 1",
            [bucket_seconds, bucket_seconds, active_model_id, start, end],
        )
        counted = {row[0]: row[1:] for row in cursor.fetchall()}
    zeros = (0,) * len(counts)
    return [
        dict(zip(("bucket", *counts), (bucket, *counted.get(bucket, zeros))))
        for bucket in bucket_starts(start, end, bucket_seconds)
    ]


def newest_alerts(*, limit: int = 10) -> list:
    """The newest alerts with their model, newest data time first.

    Read from the most recently stored alerts (walking the created_at index; there is no index on data time across
    models), so a backfill of old data does not hide what just came in.
    """
    recent = list(
        ModelPrediction.objects.readable().filter(tag="alert").select_related("active_model")
        .order_by("-created_at", "-id")[: limit * 5]
    )
    recent.sort(key=lambda row: (row.prediction_timestamp, row.pk), reverse=True)
    return recent[:limit]


def webhook_deliveries(*, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list, int]:
    """The webhook outbox, newest first (optionally one status), with the number of rows matching."""
    queryset = WebhookDelivery.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    rows = list(queryset.order_by("-created_at", "-id")[offset: offset + limit])
    return rows, queryset.count()


def webhook_delivery_counts() -> dict[str, int]:
    """Outbox rows per status (pending, delivered, failed), zeros included."""
    counted = dict(WebhookDelivery.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counted.get(status, 0) for status in DeliveryStatus.values}


def coin_metrics_summary() -> dict:
    """Rows, newest and oldest data time and distinct coins of `coin_metrics` (the debug view, spec X2).

    Counts the whole table (a debug aid, not for polling); `{message: "No data", total: 0}` when it is empty.
    """
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*), max("timestamp"), min("timestamp"), count(DISTINCT mint) FROM coin_metrics')
        total, latest, earliest, coins = cursor.fetchone()
    if not total:
        return {"message": "No data", "total": 0}
    return {"total": total, "latest": latest, "earliest": earliest, "unique_coins": coins}


# --- models with their prediction statistics, and their n8n delivery status ------------------------------------
# API views, pages and MCP tools read through these, so every front door reports the same numbers.

N8N_URL_DISPLAY_LENGTH = 50  # n8n-status shows at most this many characters of the URL, then "..."


def models_with_statistics() -> QuerySet[ActiveModel]:
    """Models annotated with what ModelInfo reports, in its order (active first, newest first); one query.

    Annotations: `prediction_count`, `alert_count` (tag alert), `non_alert_count`, `average_probability`
    (over the model's model_predictions rows), `model_file_exists`, `artifact_version` (the current version)
    and `artifact_versions` (how many versions are stored).
    """
    artifacts = ModelArtifact.objects.filter(model=OuterRef("pk")).order_by()
    is_alert = Q(predictions__tag=Tag.ALERT)
    return ActiveModel.objects.annotate(
        prediction_count=Count("predictions"),
        alert_count=Count("predictions", filter=is_alert),
        non_alert_count=Count("predictions", filter=~is_alert),
        average_probability=Avg("predictions__probability"),
        model_file_exists=Exists(artifacts.filter(is_current=True)),
        artifact_version=Subquery(artifacts.filter(is_current=True).values("version")[:1]),
        artifact_versions=Coalesce(
            Subquery(artifacts.values("model").annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()),
            0,
        ),
    ).order_by("-is_active", "-created_at", "-pk")


def list_models(*, include_inactive: bool = False) -> QuerySet[ActiveModel]:
    models = models_with_statistics()
    return models if include_inactive else models.filter(is_active=True)


def get_model_with_statistics(*, active_model_id: int) -> ActiveModel:
    """One model (active or not) with the ModelInfo annotations; raises ActiveModel.DoesNotExist."""
    return models_with_statistics().get(pk=active_model_id)


def n8n_status(*, active_model_id: int) -> dict:
    """How the last webhook POST to the model's target URL went (the URL is shared, so not per model).

    The target is the model's own URL, else the global one (N8N_WEBHOOK_URL or the stored UI setting).
    Keys depend on the case: unknown model / no URL → `status`, `message`; no attempt yet → also `n8n_url`;
    otherwise `status` (ok: 2xx; error: an error message or a status ≥ 300; unknown: neither, e.g. a timeout
    without text), `last_attempt`, `last_status`, `last_error`, `n8n_url`.
    """
    own_urls = list(ActiveModel.objects.filter(pk=active_model_id).values_list("n8n_webhook_url", flat=True))
    if not own_urls:
        return {"status": "unknown", "message": "Model not found"}
    url = own_urls[0] or config.global_n8n_webhook_url()
    if not url:
        return {"status": "no_url", "message": "No n8n URL configured"}
    shown_url = url[:N8N_URL_DISPLAY_LENGTH] + "..." if len(url) > N8N_URL_DISPLAY_LENGTH else url
    last = (
        WebhookLog.objects.filter(webhook_url=url)
        .order_by("-created_at", "-pk")
        .values("response_status", "error_message", "created_at")
        .first()
    )
    if last is None:
        return {"status": "unknown", "message": "No webhook attempt yet", "n8n_url": shown_url}
    response_status, error_message = last["response_status"], last["error_message"]
    if response_status and 200 <= response_status < 300:
        status = "ok"
    elif error_message or (response_status and response_status >= 300):
        status = "error"
    else:
        status = "unknown"
    return {
        "status": status,
        "last_attempt": last["created_at"],
        "last_status": response_status,
        "last_error": error_message,
        "n8n_url": shown_url,
    }


def simulated_market() -> dict | None:
    """The simulated market `simulate_market` runs or ran on this database (coins, seed, realtime, started_at,
    finished_at: None while it runs, rows), times as datetimes; None if none ever ran here."""
    record = RuntimeSetting.objects.filter(key=SIMULATED_MARKET_KEY).values_list("value", flat=True).first()
    if not isinstance(record, dict):
        return None
    moments = {key: record.get(key) for key in ("started_at", "finished_at")}
    return {**record, **{key: datetime.fromisoformat(value) if value else None for key, value in moments.items()}}
