"""The existing server's raw prediction history, copied into model_predictions by `import_legacy_tables`.

Before `model_predictions` the existing server stored each prediction in `predictions` and its alert and verdict in
`alert_evaluations` (one row per prediction, status pending, non_alert, success, failed or expired); migration
predictions 0004 set both aside as `legacy_predictions` and `legacy_alert_evaluations`. Each legacy prediction
becomes one model_predictions row, so the pages, statistics, legacy endpoints and exports show it:

| ours | from |
|---|---|
| `active_model_id` | the imported model of the prediction's `active_model_id` (when it is the same training model), else the imported model with its training `model_id` |
| `prediction_timestamp`, `prediction`, `probability`, `prediction_duration_ms`, `created_at` | the prediction's `data_timestamp`, …, as they are |
| `tag` | from the probability and the model's (current) alert threshold, as the listener tags |
| `status`, `evaluation_result` | a verdict success/failed stays, expired becomes not_applicable (both `inaktiv`); pending, non_alert or no verdict row: `aktiv`, judged by our worker like any pending row |
| verdict of a positive prediction below the threshold | inverted: the existing server judged it as a non-alert ("success" = the target was *not* reached), ours judges every `prediction = 1` by whether the target was reached |
| `evaluation_timestamp` | the verdict row's, else the data time + the model's `future_minutes` (10 without) |
| `*_at_prediction`, `*_at_evaluation`, `actual_price_change_pct`, `evaluation_note`, `evaluated_at` | the verdict row's `*_at_alert` and `*_at_evaluation` snapshots (close/open/high/low, market_cap_close, volume_sol, phase) |
| `ath_highest_pct`, `ath_highest_timestamp` | the verdict row's `ath_price_change_pct` and `ath_timestamp` when above 0 |

Rows get new ids (the legacy ids are another table's). A row is skipped, and counted per reason, when its model was
not imported, when model_predictions already has the same model, coin and data time (a re-run, or the same event
stored by both systems), when it repeats an earlier legacy row, or when it breaks our NOT NULL, length or CHECK
rules (read from the database, as for the other tables). The legacy tables are never changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import DatabaseError
from psycopg import sql

from predictions.legacy_schema import Column, check_constraints, columns, exists, render

HISTORY = "legacy_predictions"
VERDICTS = "legacy_alert_evaluations"
TARGET = "model_predictions"
DEFAULT_HORIZON_MINUTES = 10  # the existing server's horizon for models without future_minutes
NO_MODEL = "its model was not imported"
ALREADY_THERE = "already in model_predictions"
DUPLICATE = "duplicate key (the row with the lower id was kept)"


class HistoryImportError(Exception):
    """The history cannot be copied; one line for the operator."""


@dataclass
class HistoryReport:
    history_found: bool = True
    copied: int = 0
    judged: int = 0  # copied with a verdict
    converted: int = 0  # of those, verdicts inverted to our meaning
    pending: int = 0  # copied as pending: our worker judges them
    already_there: int = 0
    skipped: Counter = field(default_factory=Counter)
    verdicts_without_prediction: int = 0

    def summary(self, *, dry_run: bool = False) -> str:
        if not self.history_found:
            return f"{TARGET} (prediction history): no {HISTORY} table, nothing to copy"
        copied = "to copy" if dry_run else "copied"
        line = (
            f"{TARGET} (prediction history from {HISTORY}, {VERDICTS}): {self.copied} {copied} "
            f"({self.judged} judged, {self.converted} of them with the verdict converted, {self.pending} pending), "
            f"{sum(self.skipped.values())} skipped"
        )
        if self.skipped:
            line += " (" + ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items())) + ")"
        if self.already_there:
            line += f", {self.already_there} {ALREADY_THERE}"
        if self.verdicts_without_prediction:
            line += f"; {self.verdicts_without_prediction} {VERDICTS} rows without their prediction not copied"
        return line


def copy_history(cursor, *, write: bool) -> HistoryReport:
    """Classify every legacy prediction and, with `write`, insert the rows that fit; one statement.

    Runs inside import_legacy_tables' transaction, after the models were copied and the id sequences moved (the
    rows take new ids from model_predictions' sequence; a dry run counts without inserting, so it takes none).
    """
    if not exists(cursor, HISTORY):
        return HistoryReport(history_found=False)
    history_names = {column.name for column in columns(cursor, HISTORY)}
    verdict_names = {column.name for column in columns(cursor, VERDICTS)} if exists(cursor, VERDICTS) else set()
    if "id" not in history_names:
        raise HistoryImportError(f"{HISTORY} has no id column, so its verdicts cannot be matched to it")
    ours = [column for column in columns(cursor, TARGET) if column.name != "id"]
    values = _values(history_names, verdict_names)
    statement = _statement(ours, values, verdict_names, check_constraints(cursor, TARGET), write=write)
    try:
        cursor.execute(render(statement))
    except DatabaseError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise HistoryImportError(f"copying {HISTORY} failed, nothing was copied: {first_line}") from exc
    report = HistoryReport()
    for reason, count, judged, converted, pending, inserted in cursor.fetchall():
        if reason is None:
            report.copied = inserted if write else count
            report.judged, report.converted, report.pending = judged, converted, pending
        elif reason == ALREADY_THERE:
            report.already_there = count
        else:
            report.skipped[reason] = count
    if {"id", "prediction_id"} <= verdict_names:
        cursor.execute(render(sql.SQL(
            "SELECT count(*) FROM {verdicts} v WHERE NOT EXISTS (SELECT 1 FROM {history} p WHERE p.id = v.prediction_id)"
        ).format(verdicts=sql.Identifier(VERDICTS), history=sql.Identifier(HISTORY))))
        report.verdicts_without_prediction = cursor.fetchone()[0]
    return report


def _values(history_names: set[str], verdict_names: set[str]) -> dict[str, sql.Composable]:
    """Our column → its value, over `source` (the legacy prediction `p`, its verdict `v`, its model `m`)."""

    def p(name: str) -> sql.Composable:
        return sql.SQL("p.{}").format(sql.Identifier(name)) if name in history_names else sql.SQL("NULL")

    def v(name: str) -> sql.Composable:
        return sql.SQL("v.{}").format(sql.Identifier(name)) if name in verdict_names else sql.SQL("NULL")

    tag = sql.SQL(
        "CASE WHEN {probability} >= m.alert_threshold THEN 'alert' WHEN {probability} >= 0.5 THEN 'positiv' "
        "ELSE 'negativ' END"
    ).format(probability=p("probability"))
    legacy_verdict = sql.SQL(
        "CASE WHEN {status} IN ('success', 'failed') THEN {status}::text "
        "WHEN {status} IN ('expired', 'not_applicable') THEN 'not_applicable' END"
    ).format(status=v("status"))
    # A positive prediction below the threshold was a non-alert there, judged inverted.
    inverted = sql.SQL("({verdict}) IN ('success', 'failed') AND {prediction} = 1 AND ({tag}) <> 'alert'").format(
        verdict=legacy_verdict, prediction=p("prediction"), tag=tag
    )
    result = sql.SQL(
        "CASE WHEN {inverted} THEN CASE {verdict} WHEN 'success' THEN 'failed' ELSE 'success' END ELSE {verdict} END"
    ).format(inverted=inverted, verdict=legacy_verdict)
    ath = v("ath_price_change_pct")
    values = {
        "coin_id": p("coin_id"),
        "model_id": p("model_id"),
        "active_model_id": sql.SQL("m.id"),
        "prediction": p("prediction"),
        "probability": p("probability"),
        "tag": tag,
        "status": sql.SQL("CASE WHEN ({result}) IS NULL THEN 'aktiv' ELSE 'inaktiv' END").format(result=result),
        "prediction_timestamp": p("data_timestamp"),
        "evaluation_timestamp": sql.SQL(
            "COALESCE({at}, {data_time} + make_interval(mins => COALESCE(m.future_minutes, {default})))"
        ).format(at=v("evaluation_timestamp"), data_time=p("data_timestamp"),
                 default=sql.Literal(DEFAULT_HORIZON_MINUTES)),
        "evaluated_at": sql.SQL("CASE WHEN ({result}) IS NOT NULL THEN {at} END").format(
            result=result, at=v("evaluated_at")),
        "prediction_duration_ms": p("prediction_duration_ms"),
        "market_cap_at_prediction": v("market_cap_close_at_alert"),
        "volume_at_prediction": v("volume_sol_at_alert"),
        "phase_id_at_prediction": sql.SQL("COALESCE({}, {})").format(v("phase_id_at_alert"), p("phase_id_at_time")),
        "market_cap_at_evaluation": v("market_cap_close_at_evaluation"),
        "volume_at_evaluation": v("volume_sol_at_evaluation"),
        "phase_id_at_evaluation": v("phase_id_at_evaluation"),
        "actual_price_change_pct": v("actual_price_change_pct"),
        "evaluation_result": result,
        "evaluation_note": v("evaluation_note"),
        "ath_highest_pct": sql.SQL("CASE WHEN {ath} > 0 THEN {ath} END").format(ath=ath),
        "ath_highest_timestamp": sql.SQL("CASE WHEN {ath} > 0 THEN {at} END").format(ath=ath, at=v("ath_timestamp")),
        "created_at": sql.SQL("COALESCE({}, now())").format(p("created_at")),
        "updated_at": sql.SQL("COALESCE({}, {}, now())").format(v("updated_at"), p("created_at")),
        "_inverted": inverted,
    }
    for price in ("close", "open", "high", "low"):
        values[f"price_{price}_at_prediction"] = v(f"price_{price}_at_alert")
        values[f"price_{price}_at_evaluation"] = v(f"price_{price}_at_evaluation")
    return values


def _statement(ours: list[Column], values: dict, verdict_names: set[str], checks: list[tuple[str, str]], *,
               write: bool) -> sql.Composed:
    filled = [column for column in ours if column.name in values]
    converted = sql.SQL(", ").join(
        sql.SQL("({})::{} AS {}").format(values.get(column.name, sql.SQL("NULL")), sql.SQL(column.cast_type),
                                         sql.Identifier(column.name))
        for column in ours
    )
    verdict_join = sql.SQL(
        "LEFT JOIN LATERAL (SELECT * FROM {} v WHERE v.prediction_id = p.id ORDER BY v.id DESC LIMIT 1) v ON true"
    ).format(sql.Identifier(VERDICTS)) if {"id", "prediction_id"} <= verdict_names else sql.SQL("")
    model_join = sql.SQL(
        "LEFT JOIN LATERAL (SELECT m.id, m.alert_threshold, m.future_minutes FROM {models} m "
        "WHERE (m.id = p.active_model_id AND m.model_id IS NOT DISTINCT FROM p.model_id) OR m.model_id = p.model_id "
        "ORDER BY m.id = p.active_model_id DESC LIMIT 1) m ON true"
    ).format(models=sql.Identifier("prediction_active_models"))
    reasons = [
        (sql.SQL("active_model_id IS NULL"), NO_MODEL),
        (sql.SQL("EXISTS (SELECT 1 FROM {} ours WHERE ours.active_model_id = c.active_model_id "
                 "AND ours.coin_key = hashtextextended(c.coin_id, 0) AND ours.coin_id = c.coin_id "
                 "AND ours.prediction_timestamp = c.prediction_timestamp)").format(
            sql.Identifier(TARGET)), ALREADY_THERE),
        (sql.SQL("repeat > 1"), DUPLICATE),
    ]
    for column in filled:
        if column.not_null:
            reasons.append((sql.SQL("{} IS NULL").format(sql.Identifier(column.name)), f"no {column.name}"))
        if column.max_length:
            reasons.append((sql.SQL("length({}) > {}").format(sql.Identifier(column.name),
                                                              sql.Literal(column.max_length)),
                            f"{column.name} longer than {column.max_length} characters"))
    for name, expression in checks:
        reasons.append((sql.SQL("({}) IS FALSE").format(sql.SQL(expression)), f"breaks {name}"))
    classify = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(condition, sql.Literal(reason))
                                 for condition, reason in reasons)
    column_list = sql.SQL(", ").join(sql.Identifier(column.name) for column in filled)
    if write:
        inserted = sql.SQL(
            "inserted AS (INSERT INTO {table} ({columns}) SELECT {columns} FROM classified "
            "WHERE skip_reason IS NULL ORDER BY legacy_id ON CONFLICT DO NOTHING RETURNING 1)"
        ).format(table=sql.Identifier(TARGET), columns=column_list)
    else:
        inserted = sql.SQL("inserted AS (SELECT 1 WHERE false)")
    return sql.SQL(
        """
        WITH source AS (SELECT p.id AS legacy_id, ({inverted})::boolean AS inverted, {converted}
                          FROM {history} p {verdict_join} {model_join}),
             numbered AS (SELECT *, row_number() OVER (PARTITION BY active_model_id, coin_id, prediction_timestamp
                                                       ORDER BY legacy_id) AS repeat FROM source),
             classified AS (SELECT c.*, CASE {classify} END AS skip_reason FROM numbered c),
             {inserted}
        SELECT skip_reason, count(*), count(*) FILTER (WHERE status = 'inaktiv'), count(*) FILTER (WHERE inverted),
               count(*) FILTER (WHERE status = 'aktiv'), (SELECT count(*) FROM inserted)
          FROM classified GROUP BY skip_reason
        """
    ).format(
        inverted=values["_inverted"], converted=converted, history=sql.Identifier(HISTORY),
        verdict_join=verdict_join, model_join=model_join, classify=classify, inserted=inserted,
    )
