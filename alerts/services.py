"""Judging predictions against what the price did: evaluation, ATH tracking, housekeeping and the worker's schedules.

Everything here works set-wise in SQL: one run is a few statements whatever the number of rows, and no Python loop
touches single rows.

Evaluation (`evaluate_due`, spec §2.4)
--------------------------------------
A row is due when it is pending (`status='aktiv'`) and its `evaluation_timestamp` (prediction time + the model's
`future_minutes` at insert, or + 10 minutes for classic models) has passed. It is judged against its *evaluation
snapshot*: the newest `coin_metrics` row of the coin with `prediction_timestamp <= timestamp <=
evaluation_timestamp`. A row older than the prediction says nothing about what happened after it (the existing server
used it and judged dead coins on a change of 0, weakness 6), so without a row in that interval the verdict is
`not_applicable`. The snapshot is therefore never older than the prediction; when the coin had no newer row than the
one predicted on, the snapshot is that row (the collector wrote no newer bucket: the price did not move) and the
change is 0.

Δ = (close at the snapshot − close at prediction) / close at prediction × 100, rounded to the stored 4 decimals; the
verdict uses the stored value, so what a user reads is what was judged. The model's *current* target is used
(LEFT JOIN: a deleted model gives `not_applicable`; the FK cascade makes that unreachable today).

Time-based models (`price_change_percent` p set; direction d, NULL = up): the target is *reached* when
Δ ≥ p (up) or Δ ≤ −p (down). Prediction 1 succeeds iff the target was reached; prediction 0 succeeds iff it
was not (this is the spec's table: 1/up Δ ≥ p, 1/down Δ ≤ −p, 0/up Δ < p, 0/down Δ > −p). The 0/1
`prediction` is judged, not the tag, so every tag is evaluated.

Classic models (`target_operator` and `target_value` set, no `price_change_percent`): the value of the model's
`target_variable` (any numeric `coin_metrics` column) in the evaluation snapshot is compared with the operator and
value; `=` holds within an absolute tolerance of 0.01 (as the legacy evaluator did). Prediction 1 succeeds iff the
condition holds, prediction 0 iff it does not. A missing or non-numeric value (or no snapshot) is `not_applicable`.
Δ is still stored when both prices are known, for information.

ATH figures never change a verdict: only the close at the horizon counts, as in the existing system. (The legacy
`alert_evaluations` evaluator judged on the ATH; the current one does not, and clients' success rates rely on that.)

`not_applicable`, in the order checked: no snapshot in [prediction, horizon]; model deleted; classic value missing;
no `price_change_percent` (and not classic); start or evaluation close missing or zero.

Each judged row gets `status='inaktiv'`, `evaluated_at` (the run's `now`), the result, Δ, a short English note (not
stored where a reader derives it again: predictions/notes.py), the snapshot's prices, market cap, `volume_sol` and
phase, and the final ATH merge: a positive Δ beyond `ath_highest_pct` (or a negative one beyond `ath_lowest_pct`)
replaces it, with the snapshot time as its timestamp (the existing server left the timestamp pointing at the older,
smaller extreme). Without a snapshot the ATH figures are kept (the existing server overwrote them with NULL).

Rows are claimed with `FOR UPDATE SKIP LOCKED` and the update re-checks `status='aktiv'`, so concurrent workers
never judge a row twice and never wait for each other (weakness 7). A run takes at most `limit` rows, oldest horizon
first, and reports whether more are due.

ATH tracking (`track_ath`, spec §2.5)
-------------------------------------
For every pending row still inside its horizon (not a batch of 200: weakness 8), the highest and lowest
`price_close` of its coin with `prediction_timestamp <= timestamp <= now` (= min(now, evaluation_timestamp) for these
rows) is compared with the start price; `ath_highest_pct` only grows and only with positive changes,
`ath_lowest_pct` only falls and only with negative ones, each with the metrics timestamp where the extreme occurred
(the earliest one on ties). Rows are written only when a figure moves.

The cost does not grow with the number of models: each coin's prices are read once, from its oldest open prediction
on, and one pass over each coin's timeline (newest first) gives every open prediction the extremes of all prices at
or after it. A wall-clock watermark (e.g. `updated_at`) would make this incremental, but it misses rows that a
collector writes late and back-filled predictions whose data time lies before their insert time, so the window is
recomputed; it is bounded by the horizon. The last stretch between the final ATH run and the horizon is covered by
the close at evaluation (the merge above), at most one evaluation interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from alerts.schedules import recurring_jobs
from audit import services as audit_services
from predictions import notes
from predictions.models import EvaluationResult, ModelPrediction, WebhookLog
from predictions.services import CLASSIC_HORIZON, prune_scan_cache

DEFAULT_EVALUATION_LIMIT = 100_000
DEFAULT_WEBHOOK_LOG_RETENTION_DAYS = 30


def _largest_stored_percent() -> str:
    """The largest value the percentage columns hold, e.g. 999999999999.9999 for NUMERIC(16,4)."""
    field = ModelPrediction._meta.get_field("actual_price_change_pct")
    return "9" * (field.max_digits - field.decimal_places) + "." + "9" * field.decimal_places


def percent_change_sql(price: str, start: str) -> str:
    """SQL for the change from `start` to `price` in percent, as stored: rounded to 4 places and capped.

    A coin can rise from 1e-18 to 1: the cap keeps such an outlier from failing the whole set-wise statement
    (and, with it, every run after it). NULL when either price is missing, zero or NaN (NUMERIC 'NaN' sorts above
    every number in PostgreSQL, so `> 0` alone lets it through).
    """
    limit = _largest_stored_percent()
    return (
        f"CASE WHEN {start} > 0 AND {price} > 0 AND {start} <> 'NaN' AND {price} <> 'NaN' THEN round(least(greatest(({price} - {start}) / {start} * 100, "
        f"-{limit}), {limit}), 4) END"
    )


def ath_merge_sql(*, high: str, high_at: str, low: str, low_at: str) -> str:
    """SQL SET assignments that move the ATH figures of `p` (a model_predictions row) outward.

    `high` replaces `ath_highest_pct` only when it is above both the stored figure and 0, `low` replaces
    `ath_lowest_pct` only when it is below both; each with its timestamp. A NULL candidate keeps what is stored.
    Evaluation (the close at the horizon) and ATH tracking (the extremes so far) share it.
    """
    return (
        f"ath_highest_pct = CASE WHEN {high} > coalesce(p.ath_highest_pct, 0) THEN {high} ELSE p.ath_highest_pct END, "
        f"ath_highest_timestamp = CASE WHEN {high} > coalesce(p.ath_highest_pct, 0) "
        f"THEN {high_at} ELSE p.ath_highest_timestamp END, "
        f"ath_lowest_pct = CASE WHEN {low} < coalesce(p.ath_lowest_pct, 0) THEN {low} ELSE p.ath_lowest_pct END, "
        f"ath_lowest_timestamp = CASE WHEN {low} < coalesce(p.ath_lowest_pct, 0) "
        f"THEN {low_at} ELSE p.ath_lowest_timestamp END"
    )


# How a prediction is judged, as CTEs over a CTE `claimed` with the columns id, coin_id, active_model_id, prediction,
# prediction_timestamp, evaluation_timestamp and price_close_at_prediction: `verdicts` gives each claimed row its
# result, note, change and evaluation snapshot. The worker's evaluation and a backtest's judging both use it: the
# worker as VERDICT_CTES (the facts of each row, then the rule), a backtest with facts it gathers set-wise for many
# rows of a coin at once (backtests/services.py) followed by the same rule, VERDICT_RULE_CTES.
VERDICT_FACTS_CTE = """
facts AS (
    -- Each claimed row with its model's current target and its evaluation snapshot. The snapshot must lie at or
    -- after the prediction: an older row says nothing about what happened after it (weakness 6).
    SELECT p.id, p.prediction, p.price_close_at_prediction AS start_price,
           m.id IS NOT NULL AS model_exists,
           m.price_change_percent AS target_pct,
           coalesce(m.target_direction, 'up') AS direction,
           m.target_variable, m.target_operator, m.target_value,
           (m.price_change_percent IS NULL AND m.target_operator IS NOT NULL AND m.target_value IS NOT NULL)
               AS is_classic,
           snapshot."timestamp" AS snapshot_at,
           snapshot.price_close, snapshot.price_open, snapshot.price_high, snapshot.price_low,
           snapshot.market_cap_close, snapshot.volume_sol, snapshot.phase_id_at_time,
           -- The classic target may name any column; to_jsonb reads it by name without building SQL from data.
           CASE WHEN m.price_change_percent IS NULL AND m.target_operator IS NOT NULL
                THEN to_jsonb(snapshot) -> m.target_variable END AS classic_json
      FROM claimed p
      LEFT JOIN prediction_active_models m ON m.id = p.active_model_id
      LEFT JOIN LATERAL (
            SELECT *
              FROM coin_metrics c
             WHERE c.mint = p.coin_id
               AND c."timestamp" <= p.evaluation_timestamp
               AND c."timestamp" >= p.prediction_timestamp
             ORDER BY c."timestamp" DESC
             LIMIT 1
           ) snapshot ON true
)"""

# The rule over `facts` (id, prediction, start_price, model_exists, target_pct, direction, target_variable,
# target_operator, target_value, is_classic, snapshot_at, the snapshot's prices and classic_json).
VERDICT_RULE_CTES = f"""
measured AS (
    SELECT f.*,
           {percent_change_sql("f.price_close", "f.start_price")} AS change_pct,
           CASE WHEN jsonb_typeof(f.classic_json) = 'number' THEN (f.classic_json #>> '{{}}')::numeric END
               AS classic_value
      FROM facts f
),
outcomes AS (
    -- Did the predicted event happen? NULL when it cannot be told.
    SELECT m.*,
           CASE WHEN m.is_classic THEN
                     CASE m.target_operator
                          WHEN '>'  THEN m.classic_value >  m.target_value
                          WHEN '<'  THEN m.classic_value <  m.target_value
                          WHEN '>=' THEN m.classic_value >= m.target_value
                          WHEN '<=' THEN m.classic_value <= m.target_value
                          WHEN '='  THEN abs(m.classic_value - m.target_value) < 0.01
                     END
                WHEN m.direction = 'down' THEN m.change_pct <= -m.target_pct
                ELSE m.change_pct >= m.target_pct
           END AS happened
      FROM measured m
),
judged_outcomes AS (
    -- Prediction 1 is right when the event happened, prediction 0 when it did not.
    SELECT o.*,
           CASE WHEN o.snapshot_at IS NULL OR NOT o.model_exists OR o.happened IS NULL THEN 'not_applicable'
                WHEN o.happened = (o.prediction = 1) THEN 'success'
                ELSE 'failed'
           END AS result
      FROM outcomes o
),
verdicts AS (
    SELECT o.*,
           CASE WHEN o.snapshot_at IS NULL THEN 'no metrics between prediction and evaluation time'
                WHEN NOT o.model_exists THEN 'model deleted'
                WHEN o.is_classic AND o.classic_value IS NULL
                     THEN o.target_variable || ' has no numeric value at evaluation time'
                WHEN o.is_classic
                     THEN o.target_variable || ' = ' || trim_scale(o.classic_value) || ' (target '
                          || o.target_operator || ' ' || trim_scale(o.target_value) || '): '
                          || CASE WHEN o.happened THEN 'met' ELSE 'not met' END || ', predicted ' || o.prediction
                WHEN o.target_pct IS NULL THEN 'model has no price target (price_change_percent not set)'
                WHEN o.change_pct IS NULL THEN 'price data unavailable (start or evaluation price missing or zero)'
                -- The one note a reader can derive again (predictions/notes.py).
                ELSE prediction_note(o.change_pct, o.target_pct, o.direction, o.result, o.prediction)
           END AS note
      FROM judged_outcomes o
)
"""
VERDICT_CTES = f"{VERDICT_FACTS_CTE},\n{VERDICT_RULE_CTES}"

EVALUATE_DUE_SQL = f"""
WITH claimed AS (
    -- Due rows, oldest horizon first (partial index predictions_due_idx). SKIP LOCKED: rows another worker is
    -- judging (or tracking) are left to it, so no row is judged twice and no worker waits for another.
    -- The day partitions created ahead are pruned (a due row's data time is not after its horizon).
    SELECT id, coin_id, active_model_id, prediction, prediction_timestamp, evaluation_timestamp,
           price_close_at_prediction, tag
      FROM model_predictions
     WHERE status = 'aktiv' AND evaluation_timestamp <= %(now)s AND prediction_timestamp <= %(now)s
     ORDER BY evaluation_timestamp
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
),
{VERDICT_CTES},
judged AS (
    UPDATE model_predictions p
       SET status = 'inaktiv',
           evaluated_at = %(now)s,
           updated_at = now(),
           evaluation_result = v.result,
           -- Not stored where a reader derives it (predictions/notes.py): NULL when equal to prediction_note().
           evaluation_note = nullif(v.note, prediction_note(v.change_pct, v.target_pct, v.direction, v.result,
                                                            v.prediction)),
           actual_price_change_pct = v.change_pct,
           price_close_at_evaluation = v.price_close,
           price_open_at_evaluation = v.price_open,
           price_high_at_evaluation = v.price_high,
           price_low_at_evaluation = v.price_low,
           market_cap_at_evaluation = v.market_cap_close,
           volume_at_evaluation = v.volume_sol,
           phase_id_at_evaluation = v.phase_id_at_time,
           -- Final ATH merge with the close at the horizon; a NULL change (no snapshot) keeps what was tracked.
           {ath_merge_sql(high="v.change_pct", high_at="v.snapshot_at", low="v.change_pct", low_at="v.snapshot_at")}
      FROM verdicts v
      JOIN claimed c ON c.id = v.id
     WHERE p.id = c.id AND p.prediction_timestamp = c.prediction_timestamp AND p.tag = c.tag  -- one partition each
       AND p.prediction_timestamp <= %(now)s
       AND p.status = 'aktiv'  -- never judge a row twice, even if it was claimed some other way
    RETURNING p.evaluation_result
)
SELECT evaluation_result, count(*) FROM judged GROUP BY evaluation_result
"""

MORE_DUE_SQL = """
SELECT EXISTS (SELECT 1 FROM model_predictions WHERE status = 'aktiv' AND evaluation_timestamp <= %(now)s)
"""

# Timestamps travel inside the extreme-search keys as exact integer microseconds since the epoch.
_MICROS = "(extract(epoch FROM {0}) * 1000000)"
_FROM_MICROS = "(timestamptz 'epoch' + ({0})::bigint * interval '1 microsecond')"

TRACK_ATH_SQL = f"""
WITH open_rows AS (
    -- Pending rows still inside their horizon, with a start price to measure against. No such row is older than
    -- the longest horizon, so only the partitions of the last days are read.
    SELECT id, coin_id, prediction_timestamp, price_close_at_prediction AS start_price, tag
      FROM model_predictions
     WHERE status = 'aktiv'
       AND evaluation_timestamp > %(now)s
       AND prediction_timestamp <= %(now)s AND prediction_timestamp >= %(since)s
       AND price_close_at_prediction > 0 AND price_close_at_prediction <> 'NaN'
),
coin_windows AS (
    -- Each coin's prices are read once, from its oldest open prediction on, however many models predicted it.
    SELECT coin_id, min(prediction_timestamp) AS since FROM open_rows GROUP BY coin_id
),
timeline AS (
    -- Prices and open predictions on one time axis per coin. A price carries two search keys: max() of
    -- [price, -time] is the highest price and, on ties, its earliest time; min() of [price, time] the lowest.
    SELECT w.coin_id, c."timestamp" AS at, NULL::bigint AS prediction_id,
           ARRAY[c.price_close, -{_MICROS.format('c."timestamp"')}] AS high_key,
           ARRAY[c.price_close, {_MICROS.format('c."timestamp"')}] AS low_key
      FROM coin_windows w
      JOIN coin_metrics c
        ON c.mint = w.coin_id AND c."timestamp" >= w.since AND c."timestamp" <= %(now)s
     WHERE c.price_close IS NOT NULL AND c.price_close <> 'NaN'  -- NaN would win every max()
    UNION ALL
    SELECT coin_id, prediction_timestamp, id, NULL, NULL FROM open_rows
),
extremes AS (
    -- Walking each coin's timeline newest first, a prediction has seen exactly the prices at or after its own
    -- time (prices sort before predictions at the same instant, so the price it was made on counts).
    SELECT prediction_id, max(high_key) OVER later AS high_key, min(low_key) OVER later AS low_key
      FROM timeline
    WINDOW later AS (PARTITION BY coin_id ORDER BY at DESC, prediction_id NULLS FIRST ROWS UNBOUNDED PRECEDING)
),
candidates AS (
    SELECT o.id,
           {percent_change_sql("e.high_key[1]", "o.start_price")} AS highest_pct,
           {_FROM_MICROS.format("-e.high_key[2]")} AS highest_at,
           {percent_change_sql("e.low_key[1]", "o.start_price")} AS lowest_pct,
           {_FROM_MICROS.format("e.low_key[2]")} AS lowest_at
      FROM extremes e
      JOIN open_rows o ON o.id = e.prediction_id
),
moving AS (
    -- Only rows where a figure moves outward (highs positive, lows negative, as the CHECK constraints demand).
    -- SKIP LOCKED leaves rows an evaluator is closing to it: no waiting, no deadlock between the two jobs.
    SELECT p.id, p.prediction_timestamp, p.tag
      FROM open_rows o
      JOIN model_predictions p ON p.id = o.id AND p.prediction_timestamp = o.prediction_timestamp AND p.tag = o.tag
      JOIN candidates c ON c.id = o.id
     WHERE p.status = 'aktiv' AND p.prediction_timestamp >= %(since)s AND p.prediction_timestamp <= %(now)s
       AND (c.highest_pct > coalesce(p.ath_highest_pct, 0) OR c.lowest_pct < coalesce(p.ath_lowest_pct, 0))
       FOR UPDATE OF p SKIP LOCKED
)
UPDATE model_predictions p
   SET {ath_merge_sql(high="c.highest_pct", high_at="c.highest_at", low="c.lowest_pct", low_at="c.lowest_at")},
       updated_at = now()
  FROM moving
  JOIN candidates c ON c.id = moving.id
 WHERE p.id = moving.id AND p.prediction_timestamp = moving.prediction_timestamp AND p.tag = moving.tag
   AND p.prediction_timestamp >= %(since)s AND p.prediction_timestamp <= %(now)s  -- planned with those partitions only
"""

# The longest horizon of any model (classic ones: CLASSIC_HORIZON): no open row is older than that.
LONGEST_HORIZON_SQL = """
SELECT greatest(max(future_minutes), %(classic)s) FROM prediction_active_models
"""


@dataclass(frozen=True)
class EvaluationReport:
    """What one `evaluate_due` run judged, by result, and whether due rows are left for another run."""

    success: int = 0
    failed: int = 0
    not_applicable: int = 0
    more_due: bool = False

    @property
    def evaluated(self) -> int:
        return self.success + self.failed + self.not_applicable

    def by_result(self) -> dict[str, int]:
        return {
            EvaluationResult.SUCCESS: self.success,
            EvaluationResult.FAILED: self.failed,
            EvaluationResult.NOT_APPLICABLE: self.not_applicable,
        }


def evaluate_due(*, now: datetime | None = None, limit: int | None = None) -> EvaluationReport:
    """Judge up to `limit` due predictions (oldest horizon first) in one statement; see the module docstring."""
    now = now or timezone.now()
    limit = DEFAULT_EVALUATION_LIMIT if limit is None else limit
    with transaction.atomic(), connection.cursor() as cursor:
        # A model's target change waits for this run (its notes are derived from the target it reads), or this run
        # for the change (predictions/notes.py).
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [notes.TARGET_LOCK])
        cursor.execute(EVALUATE_DUE_SQL, {"now": now, "limit": limit})
        counts = dict(cursor.fetchall())
        cursor.execute(MORE_DUE_SQL, {"now": now})
        (more_due,) = cursor.fetchone()
    return EvaluationReport(
        success=counts.get(EvaluationResult.SUCCESS, 0),
        failed=counts.get(EvaluationResult.FAILED, 0),
        not_applicable=counts.get(EvaluationResult.NOT_APPLICABLE, 0),
        more_due=more_due,
    )


def track_ath(*, now: datetime | None = None) -> int:
    """Move the ATH figures of every pending row inside its horizon outward; returns the number of rows changed."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LONGEST_HORIZON_SQL, {"classic": CLASSIC_HORIZON // timedelta(minutes=1)})
        (minutes,) = cursor.fetchone()
        cursor.execute(TRACK_ATH_SQL, {"now": now, "since": now - timedelta(minutes=minutes)})
        return cursor.rowcount


@dataclass(frozen=True)
class HousekeepingReport:
    webhook_log_deleted: int
    audit_entries_deleted: int
    scan_states_deleted: int


def housekeeping(*, now: datetime | None = None) -> HousekeepingReport:
    """Delete webhook attempt logs older than `WEBHOOK_LOG_RETENTION_DAYS` (default 30), audit entries older
    than `AUDIT_RETENTION_DAYS` (default 365, in batches), and scan states idle for `SCAN_CACHE_RETENTION_DAYS`
    (default 7) that hold no coin back.

    django-q2 prunes its own success records to `Q_CLUSTER['save_limit']` each time it stores one, so they need
    nothing here.
    """
    now = now or timezone.now()
    days = getattr(settings, "WEBHOOK_LOG_RETENTION_DAYS", DEFAULT_WEBHOOK_LOG_RETENTION_DAYS)
    deleted, _by_model = WebhookLog.objects.filter(created_at__lt=now - timedelta(days=days)).delete()
    audit_deleted = audit_services.delete_older_than(days=settings.AUDIT_RETENTION_DAYS, now=now)
    scan_states_deleted = prune_scan_cache(now=now, idle_days=settings.SCAN_CACHE_RETENTION_DAYS)
    return HousekeepingReport(webhook_log_deleted=deleted, audit_entries_deleted=audit_deleted,
                              scan_states_deleted=scan_states_deleted)


def ensure_schedules(**_signal_kwargs) -> None:
    """Create or update the worker's recurring jobs (`alerts.schedules`) by name; connected to post_migrate."""
    with transaction.atomic():
        for job in recurring_jobs():
            Schedule.objects.update_or_create(
                name=job.name,
                defaults={"func": job.func, "schedule_type": job.schedule_type, "minutes": job.minutes,
                          "cron": job.cron, "repeats": -1},
            )
