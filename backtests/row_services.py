"""Storing a group of replayed rows, judged: one binary COPY into a staging table and one INSERT that judges every row
with the worker's verdict rule (`alerts.services.VERDICT_RULE_CTES`) as it stores it, and answers the partial
summary figures of the rows it stored (`backtests.summary.PARTIAL_SELECT`).

The facts the rule needs are gathered set-wise, coin by coin, instead of two index reads per row: one window over
the group's coin_metrics rows gives each row the newest row of its coin within its horizon (the evaluation
snapshot: the last row of `RANGE BETWEEN CURRENT ROW AND horizon FOLLOWING`, i.e. prediction time <= timestamp <=
evaluation time, as the worker's lateral read picks it) and its own close (the start price: the coin's newest row at
or before the prediction is the predicted row itself). Rows whose horizon lies beyond `data_end` are stored
unjudged, as before.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db import connection, transaction

from alerts.services import VERDICT_CTES, VERDICT_RULE_CTES
from backtests.summary import PARTIAL_SELECT, part_cte, partial_params
from inference import history
from inference.replay import ReplayedRows

TAGS = ("negativ", "positiv", "alert")
_PG_EPOCH_MICROS = 946_684_800_000_000  # 2000-01-01 UTC, where binary timestamptz counts from

STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS backtest_staging (
    seq bigint, coin integer, metric_id bigint, at timestamptz, evaluation_at timestamptz, probability float8,
    prediction smallint, tag smallint
) ON COMMIT DELETE ROWS
"""
_STAGING_FIELDS = (("seq", ">i8"), ("coin", ">i4"), ("metric_id", ">i8"), ("at", ">i8"), ("evaluation_at", ">i8"),
                   ("probability", ">f8"), ("prediction", ">i2"), ("tag", ">i2"))
_STAGING_LAYOUT = np.dtype([("fields", ">i2")] + [field for name, code in _STAGING_FIELDS
                                                  for field in ((f"{name}_size", ">i4"), (name, code))])
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"

STORE_JUDGED_SQL = f"""
WITH prices AS (
    -- Every row of the group's coins from the first prediction to the last horizon (within the recorded data), with
    -- the newest row of its coin within its horizon.
    SELECT m.id, m.price_close,
           last_value(m.id) OVER horizon AS snapshot_id,
           last_value(m."timestamp") OVER horizon AS snapshot_at,
           last_value(m.price_close) OVER horizon AS snapshot_close
      FROM coin_metrics m
     WHERE m.mint = ANY (%(mints)s::text[]) AND m."timestamp" >= %(first)s AND m."timestamp" <= %(last)s
    WINDOW horizon AS (PARTITION BY m.mint ORDER BY m."timestamp"
                       RANGE BETWEEN CURRENT ROW AND %(horizon_us)s * interval '1 microsecond' FOLLOWING)
),
target AS MATERIALIZED (
    SELECT m.id, m.price_change_percent, m.target_direction, m.target_variable, m.target_operator, m.target_value
      FROM prediction_active_models m
     WHERE m.id = %(model)s
),
facts AS (
    -- The columns of alerts.services.VERDICT_FACTS_CTE (the snapshot's other prices are not stored by a backtest),
    -- and the staged row's own. The model's target is read once (each scalar subquery runs once).
    SELECT s.seq AS id, s.prediction, p.price_close AS start_price,
           EXISTS (SELECT FROM target) AS model_exists,
           (SELECT price_change_percent FROM target) AS target_pct,
           coalesce((SELECT target_direction FROM target), 'up') AS direction,
           (SELECT target_variable FROM target) AS target_variable,
           (SELECT target_operator FROM target) AS target_operator,
           (SELECT target_value FROM target) AS target_value,
           (SELECT price_change_percent IS NULL AND target_operator IS NOT NULL AND target_value IS NOT NULL
              FROM target) AS is_classic,
           p.snapshot_at, p.snapshot_close AS price_close,
           NULL::numeric AS price_open, NULL::numeric AS price_high, NULL::numeric AS price_low,
           NULL::numeric AS market_cap_close, NULL::numeric AS volume_sol, NULL::integer AS phase_id_at_time,
           CASE WHEN (SELECT price_change_percent IS NULL AND target_operator IS NOT NULL FROM target)
                THEN (SELECT to_jsonb(c) FROM coin_metrics c WHERE c.id = p.snapshot_id)
                     -> (SELECT target_variable FROM target)
           END AS classic_json,
           c.mint AS coin_id, s.at, s.evaluation_at, s.probability, s.tag,
           s.evaluation_at <= %(data_end)s AS judged
      FROM backtest_staging s
      JOIN unnest(%(mints)s::text[]) WITH ORDINALITY AS c(mint, i) ON c.i = s.coin
      LEFT JOIN prices p ON p.id = s.metric_id
),
{VERDICT_RULE_CTES},
stored AS (
    INSERT INTO backtest_rows (run_id, coin_id, prediction_timestamp, evaluation_timestamp, probability, prediction,
                               tag, evaluation_result, actual_price_change_pct)
    SELECT %(run)s, v.coin_id, v.at, v.evaluation_at, v.probability, v.prediction, (%(tags)s::text[])[v.tag + 1],
           CASE WHEN v.judged THEN v.result END, CASE WHEN v.judged THEN v.change_pct END
      FROM verdicts v
     ORDER BY v.id
    RETURNING probability, prediction, tag, evaluation_result, actual_price_change_pct
),
{part_cte("stored")}
{PARTIAL_SELECT}"""

# Rows stored unjudged whose horizon the recorded data has reached since (the market grew during the run): the
# worker's verdict SQL as it is, row by row.
JUDGE_LATER_SQL = f"""
WITH claimed AS (
    SELECT b.id, b.coin_id, %(model)s::bigint AS active_model_id, b.prediction, b.prediction_timestamp,
           b.evaluation_timestamp, start.price_close AS price_close_at_prediction
      FROM backtest_rows b
      LEFT JOIN LATERAL (
           SELECT m.price_close FROM coin_metrics m
            WHERE m.mint = b.coin_id AND m."timestamp" <= b.prediction_timestamp
            ORDER BY m."timestamp" DESC
            LIMIT 1
      ) start ON true
     WHERE b.run_id = %(run)s AND b.evaluation_result IS NULL AND b.evaluation_timestamp <= %(data_end)s
),
{VERDICT_CTES}
UPDATE backtest_rows b
   SET evaluation_result = v.result, actual_price_change_pct = v.change_pct
  FROM verdicts v
 WHERE b.id = v.id
"""


class RunGone(LookupError):
    """The run was deleted while it ran (its model was deleted, for example)."""


def store_judged(
    *, run_id: int, model_id: int, mints: list[str], replayed: ReplayedRows, horizon_us: int,
    data_end: datetime | None,
) -> tuple | None:
    """Store the replayed rows of one group (coin k is `mints[k]`) in their order, judging those whose horizon ends
    at or before `data_end`; returns their partial summary figures (a row for `backtests.summary.Figures.add`)."""
    if len(replayed) == 0:
        return None
    used, coin = np.unique(replayed.coin, return_inverse=True)
    at = np.asarray(replayed.timestamps_us, dtype=np.int64)
    staged = np.empty(len(replayed), dtype=_STAGING_LAYOUT)
    staged["fields"] = len(_STAGING_FIELDS)
    for name, code in _STAGING_FIELDS:
        staged[f"{name}_size"] = np.dtype(code).itemsize
    staged["seq"] = np.arange(len(replayed))
    staged["coin"] = coin + 1
    staged["metric_id"] = replayed.row_ids
    staged["at"] = at - _PG_EPOCH_MICROS
    staged["evaluation_at"] = at + horizon_us - _PG_EPOCH_MICROS
    staged["probability"] = replayed.probabilities
    staged["prediction"] = replayed.predictions
    staged["tag"] = _tag_codes(np.asarray(replayed.tags))
    last = history.from_micros(int(at.max()) + horizon_us)
    params = {
        "mints": [mints[k] for k in used], "first": history.from_micros(int(at.min())),
        "last": min(last, data_end) if data_end is not None else last, "horizon_us": horizon_us,
        "model": model_id, "data_end": data_end, "run": run_id, "tags": list(TAGS), **partial_params(),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # the window's sort of the group's rows stays in memory
        # Rows of a run that has not ended need not survive a crash (the run ends failed then); the commit that
        # ends the run waits for every earlier one.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # What the foreign key's check would do per row, once: the run exists and stays until the rows are in.
        cursor.execute("SELECT 1 FROM backtest_runs WHERE id = %s FOR KEY SHARE", [run_id])
        if cursor.fetchone() is None:
            raise RunGone(f"backtest run {run_id} was deleted while it ran")
        cursor.execute(STAGING_SQL)
        with cursor.cursor.copy("COPY backtest_staging FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_COPY_HEADER + staged.tobytes() + _COPY_TRAILER)
        cursor.execute(STORE_JUDGED_SQL, params)
        return cursor.fetchone()


def judge_later(*, run_id: int, model_id: int, data_end: datetime) -> None:
    """Judge the run's unjudged rows whose horizon ends at or before `data_end`."""
    with connection.cursor() as cursor:
        cursor.execute(JUDGE_LATER_SQL, {"model": model_id, "run": run_id, "data_end": data_end})


def _tag_codes(tags: np.ndarray) -> np.ndarray:
    codes = np.zeros(len(tags), dtype=np.int16)
    for code, tag in enumerate(TAGS):
        codes[tags == tag] = code
    return codes
