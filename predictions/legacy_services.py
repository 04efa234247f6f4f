"""Copy the existing server's rows, which migrations set aside as `legacy_*` tables, into ours (its raw prediction
history, `legacy_predictions` and `legacy_alert_evaluations`, is converted by legacy_history_services).

Ids are kept, so every model_predictions.active_model_id still points at the same model. Each table is copied
with one INSERT … SELECT: the columns both tables have, each cast to our type, with a few conversions where the
existing server's data means something ours spells differently. Rows ours cannot hold (they break a NOT NULL,
length or CHECK constraint, or point at a model that was not copied) are skipped and counted per reason; the
CHECK constraints are read from the database, so a new constraint becomes a skip rule without code here.
Everything runs in one transaction: a failure copies nothing, and the `legacy_*` tables are never changed, so
fixing a skipped row there and running again copies just that row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from django.db import DatabaseError, connection, models, transaction
from psycopg import sql

from audit.services import record_change
from modelregistry.models import ActiveModel
from predictions.legacy_history_services import HistoryImportError, HistoryReport, copy_history
from predictions.legacy_schema import Column, check_constraints, columns, exists, render
from predictions.models import CoinScanCache, EvaluationResult, ModelPrediction, PredictionStatus, WebhookLog

LEGACY_PREFIX = "legacy_"
NO_ARTIFACT_YET = "no model file yet: re-import it from the training service or register its file"

ALREADY_IMPORTED = "already imported"
DUPLICATE = "duplicate key (the row with the lower id was kept)"

# A conversion gets the legacy row's columns (a missing one reads as NULL) and returns the value for ours.
LegacyColumn = Callable[[str], sql.Composable]
Conversion = Callable[[LegacyColumn], sql.Composable]


class LegacyImportError(Exception):
    """The import cannot run or failed; the message is one line for the operator, and nothing was copied."""


def _send_mode_as_list(legacy: LegacyColumn) -> sql.Composable:
    """The existing server stored one mode as varchar, later as a jsonb string or array; ours is always an array.

    to_jsonb turns a varchar into a JSON string and leaves jsonb as it is. Anything else (NULL, JSON null)
    becomes NULL here and so gets the field's default, ["all"].
    """
    return sql.SQL(
        "CASE jsonb_typeof({mode}) WHEN 'array' THEN {mode} WHEN 'string' THEN jsonb_build_array({mode}) END"
    ).format(mode=sql.SQL("to_jsonb({})").format(legacy("n8n_send_mode")))


def _evaluated_without_result_is_not_applicable(legacy: LegacyColumn) -> sql.Composable:
    """The existing server closed some rows without a verdict; ours requires one on every evaluated row."""
    return sql.SQL(
        "CASE WHEN {status} = {evaluated} AND {result} IS NULL THEN {not_applicable} ELSE {result} END"
    ).format(
        status=legacy("status"),
        result=legacy("evaluation_result"),
        evaluated=sql.Literal(PredictionStatus.EVALUATED.value),
        not_applicable=sql.Literal(EvaluationResult.NOT_APPLICABLE.value),
    )


@dataclass(frozen=True)
class LegacyTable:
    model: type[models.Model]
    # Columns that tell whether the row already under a legacy row's id is that row, copied by an earlier run,
    # or another one that took the id because our server ran before the import.
    same_row_columns: tuple[str, ...]
    conversions: dict[str, Conversion] = field(default_factory=dict)
    references_models: bool = False  # has active_model_id; the model must have been copied

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def legacy_table(self) -> str:
        return LEGACY_PREFIX + self.table


MODELS = LegacyTable(
    ActiveModel,
    same_row_columns=("model_id", "model_name"),
    conversions={
        "n8n_send_mode": _send_mode_as_list,
        # The existing server kept model files on its disk; none of them is in our database yet.
        "load_error": lambda legacy: sql.Literal(NO_ARTIFACT_YET),
        "load_error_at": lambda legacy: sql.SQL("now()"),
    },
)
LEGACY_TABLES = [  # models first: the other tables' rows are only copied when their model was
    MODELS,
    LegacyTable(
        ModelPrediction,
        same_row_columns=("active_model_id", "coin_id", "prediction_timestamp"),
        conversions={"evaluation_result": _evaluated_without_result_is_not_applicable},
        references_models=True,
    ),
    LegacyTable(CoinScanCache, same_row_columns=("active_model_id", "coin_id"), references_models=True),
    LegacyTable(WebhookLog, same_row_columns=("coin_id", "webhook_url", "data_timestamp")),
]


@dataclass
class TableReport:
    table: str
    legacy_table_found: bool = True
    copied: int = 0
    already_imported: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self, *, dry_run: bool = False) -> str:
        if not self.legacy_table_found:
            return f"{self.table}: no {LEGACY_PREFIX}{self.table} table, nothing to copy"
        copied = "to copy" if dry_run else "copied"
        line = f"{self.table}: {self.copied} {copied}, {sum(self.skipped.values())} skipped"
        if self.skipped:
            line += " (" + ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items())) + ")"
        if self.already_imported:
            line += f", {self.already_imported} {ALREADY_IMPORTED}"
        return line


def import_legacy_tables(*, dry_run: bool = False) -> list[TableReport | HistoryReport]:
    """Copy every legacy table found, then the raw prediction history (legacy_history_services); with dry_run, do
    the same work and roll it back, so the counts are exact."""
    with transaction.atomic(), connection.cursor() as cursor:
        found = [spec for spec in LEGACY_TABLES if exists(cursor, spec.legacy_table)]
        _check_can_import(cursor, found)
        # Nobody may write our tables meanwhile: ids are compared with theirs, and the sequences reset at the end.
        ours = sql.SQL(", ").join(sql.Identifier(spec.table) for spec in LEGACY_TABLES)
        cursor.execute(render(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(ours)))
        reports = []
        for spec in LEGACY_TABLES:
            if spec in found:
                reports.append(_copy(cursor, spec))
            else:
                reports.append(TableReport(spec.table, legacy_table_found=False))
        try:
            if dry_run:
                history = copy_history(cursor, write=False)  # counts only: its rows would take sequence values
                transaction.set_rollback(True)  # before the sequences: setval is not undone by a rollback
            else:
                for spec in found:
                    _move_id_sequence_past_legacy_ids(cursor, spec)
                history = copy_history(cursor, write=True)  # new ids, so after the sequences moved
                record_change(action="import", object_type="legacy_tables", object_id="",
                              after={"reports": [report.summary() for report in [*reports, history]]})
        except HistoryImportError as exc:
            raise LegacyImportError(str(exc)) from exc
    return [*reports, history]


def _check_can_import(cursor, found: list[LegacyTable]) -> None:
    if not found:
        names = ", ".join(spec.legacy_table for spec in LEGACY_TABLES)
        raise LegacyImportError(
            f"no legacy tables found ({names}): this database holds no data of the existing server, "
            "or `migrate` has not set it aside yet"
        )
    missing_ours = [spec.table for spec in LEGACY_TABLES if not exists(cursor, spec.table)]
    if missing_ours:
        raise LegacyImportError(
            f"our tables are missing ({', '.join(missing_ours)}): run `python manage.py migrate` first"
        )
    if MODELS not in found and any(spec.references_models for spec in found):
        raise LegacyImportError(
            f"{MODELS.legacy_table} is missing, but the other legacy tables refer to its models by active_model_id"
        )


def _copy(cursor, spec: LegacyTable) -> TableReport:
    ours = columns(cursor, spec.table)
    legacy_names = {column.name for column in columns(cursor, spec.legacy_table)}
    if "id" not in legacy_names:
        raise LegacyImportError(f"{spec.legacy_table} has no id column, so its rows cannot keep their ids")
    statement = _copy_statement(spec, ours, legacy_names, check_constraints(cursor, spec.table))
    try:
        cursor.execute(render(statement))
    except DatabaseError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise LegacyImportError(f"copying {spec.legacy_table} failed, nothing was copied: {first_line}") from exc

    report = TableReport(spec.table)
    for reason, count, copied in cursor.fetchall():
        report.copied = copied
        if reason is None:
            if count > copied:
                report.skipped[DUPLICATE] = count - copied
        elif reason == ALREADY_IMPORTED:
            report.already_imported = count
        else:
            report.skipped[reason] = count
    return report


def _copy_statement(
    spec: LegacyTable, ours: list[Column], legacy_names: set[str], check_constraints: list[tuple[str, str]]
) -> sql.Composed:
    """One statement: convert the legacy rows, give each a skip reason or none, insert, and count per reason."""

    def legacy(name: str) -> sql.Composable:
        return sql.SQL("legacy.{}").format(sql.Identifier(name)) if name in legacy_names else sql.SQL("NULL::text")

    converted_values = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(_converted_value(spec, column, legacy), sql.Identifier(column.name))
        for column in ours
    )
    reasons = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(condition, sql.Literal(reason))
        for condition, reason in _skip_reasons(spec, ours, check_constraints)
    )
    column_list = sql.SQL(", ").join(sql.Identifier(column.name) for column in ours)
    return sql.SQL(
        """
        WITH converted AS (SELECT {converted_values} FROM {legacy_table} AS legacy),
             classified AS (SELECT converted.*, CASE {reasons} END AS skip_reason FROM converted),
             inserted AS (INSERT INTO {table} ({column_list})
                          SELECT {column_list} FROM classified WHERE skip_reason IS NULL ORDER BY id
                          ON CONFLICT DO NOTHING
                          RETURNING 1)
        SELECT skip_reason, count(*), (SELECT count(*) FROM inserted) FROM classified GROUP BY skip_reason
        """
    ).format(
        converted_values=converted_values,
        legacy_table=sql.Identifier(spec.legacy_table),
        reasons=reasons,
        table=sql.Identifier(spec.table),
        column_list=column_list,
    )


def _converted_value(spec: LegacyTable, column: Column, legacy: LegacyColumn) -> sql.Composable:
    conversion = spec.conversions.get(column.name)
    value = conversion(legacy) if conversion else legacy(column.name)
    value = sql.SQL("({})::{}").format(value, sql.SQL(column.cast_type))
    default = _default_of(_field_of(spec.model, column.name)) if column.not_null else None
    if default is not None:
        value = sql.SQL("COALESCE({}, ({})::{})").format(value, default, sql.SQL(column.cast_type))
    return value


def _field_of(model: type[models.Model], column_name: str) -> models.Field:
    return next(f for f in model._meta.concrete_fields if f.column == column_name)


def _default_of(model_field: models.Field) -> sql.Composable | None:
    """What our code would store when the value is not given; None when the field has no default."""
    if model_field.has_default():
        return sql.Literal(model_field.get_db_prep_save(model_field.get_default(), connection))
    # created_at/updated_at: auto_now(_add) or db_default=Now(); the import's moment stands in for the unknown time.
    if getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
        return sql.SQL("now()")
    if model_field.has_db_default():
        return sql.SQL("now()")
    return None


def _skip_reasons(
    spec: LegacyTable, ours: list[Column], check_constraints: list[tuple[str, str]]
) -> list[tuple[sql.Composable, str]]:
    """(condition on a converted row, reason), in the order they are tested: a row gets the first that holds."""
    table = sql.Identifier(spec.table)
    same_row = sql.SQL(" AND ").join(
        sql.SQL("ours.{col} IS NOT DISTINCT FROM converted.{col}").format(col=sql.Identifier(name))
        for name in spec.same_row_columns
    )
    reasons = [
        (sql.SQL("EXISTS (SELECT 1 FROM {} AS ours WHERE ours.id = converted.id AND {})").format(table, same_row),
         ALREADY_IMPORTED),
        (sql.SQL("EXISTS (SELECT 1 FROM {} AS ours WHERE ours.id = converted.id)").format(table),
         "id already used by another row"),
    ]
    if spec.references_models:
        reasons += _model_reference_reasons()
    for column in ours:
        if column.not_null:
            reasons.append((sql.SQL("{} IS NULL").format(sql.Identifier(column.name)), f"no {column.name}"))
        if column.max_length:
            reasons.append((
                sql.SQL("length({}) > {}").format(sql.Identifier(column.name), sql.Literal(column.max_length)),
                f"{column.name} longer than {column.max_length} characters",
            ))
    for name, expression in check_constraints:
        # A CHECK lets NULL pass; only a false result breaks it.
        reasons.append((sql.SQL("({}) IS FALSE").format(sql.SQL(expression)), f"breaks {name}"))
    return reasons


def _model_reference_reasons() -> list[tuple[sql.Composable, str]]:
    """A row may only follow its model: one that is ours now, under the same id, and is the legacy model."""
    legacy_models = sql.Identifier(MODELS.legacy_table)
    same_model = sql.SQL(" AND ").join(
        sql.SQL("ours.{col} IS NOT DISTINCT FROM legacy.{col}").format(col=sql.Identifier(name))
        for name in MODELS.same_row_columns
    )
    return [
        (sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS legacy WHERE legacy.id = converted.active_model_id)").format(
            legacy_models), "active_model_id matches no model"),
        (sql.SQL(
            "NOT EXISTS (SELECT 1 FROM {} AS ours JOIN {} AS legacy ON legacy.id = ours.id AND {} "
            "WHERE ours.id = converted.active_model_id)"
        ).format(sql.Identifier(MODELS.table), legacy_models, same_model), "its model was not imported"),
    ]


def _move_id_sequence_past_legacy_ids(cursor, spec: LegacyTable) -> None:
    """Inserting with explicit ids does not advance the sequence, so move it past every id in use.

    Past the skipped legacy rows' ids too: fixed in the legacy table, they can still be copied with their ids.
    The sequence never moves backwards.
    """
    statement = sql.SQL(
        """
        SELECT setval(seq::regclass, max_id)
          FROM (SELECT pg_get_serial_sequence({name}, 'id') AS seq,
                       GREATEST((SELECT max(id) FROM {table}), (SELECT max(id) FROM {legacy_table})) AS max_id) AS s
         WHERE max_id > COALESCE(pg_sequence_last_value(seq::regclass), 0)
        """
    ).format(
        name=sql.Literal(spec.table), table=sql.Identifier(spec.table), legacy_table=sql.Identifier(spec.legacy_table)
    )
    cursor.execute(render(statement))
