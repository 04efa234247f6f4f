"""Bounded storage: partitions created ahead, and expired day partitions of `model_predictions` dropped whole.

Retention never DELETEs rows: a day partition goes when its whole day is older than the kind's retention
(`ALERT_RETENTION_DAYS` for alerts, `PREDICTION_RETENTION_DAYS` for every other prediction; unset keeps them
forever), and only when nothing in it is still owed to anyone:

- no pending row (an alert is never dropped before it is judged, nor any prediction before it is judged);
- no verdict (success or failed) newer than what the quality aggregates have taken in. The quality app records
  how far it got (`record_aggregated_until`); without a record no judged partition goes.

DEFAULT partitions are never dropped: `ensure_partitions` moves their rows into day partitions first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg import sql

from predictions import partitions
from pumpserver.models import RuntimeSetting

AGGREGATED_UNTIL_KEY = "quality_aggregated_until"
LOCK_TIMEOUT = "5s"  # dropping waits this long for readers and writers of the kind's table, else tries next hour


@dataclass(frozen=True)
class PartitionFate:
    name: str
    kind: str
    day: date
    rows: int
    bytes: int
    kept_because: str | None = None  # None: dropped (or, in a dry run, would be)


@dataclass
class RetentionReport:
    created: list[str] = field(default_factory=list)
    dropped: list[PartitionFate] = field(default_factory=list)
    kept: list[PartitionFate] = field(default_factory=list)
    dry_run: bool = False
    creation_failed: str | None = None


def record_aggregated_until(*, until: datetime) -> None:
    """The quality aggregates have taken in every verdict written before `until` (called by the quality task)."""
    with transaction.atomic():
        RuntimeSetting.objects.update_or_create(key=AGGREGATED_UNTIL_KEY, defaults={"value": until.isoformat()})


def aggregated_until() -> datetime | None:
    value = RuntimeSetting.objects.filter(key=AGGREGATED_UNTIL_KEY).values_list("value", flat=True).first()
    return datetime.fromisoformat(value) if value else None


def retention_days() -> dict[str, int | None]:
    return {"alert": settings.ALERT_RETENTION_DAYS, "other": settings.PREDICTION_RETENTION_DAYS}


def _figures(cursor, name: str) -> tuple[int, int]:
    cursor.execute(sql.SQL("SELECT count(*), pg_total_relation_size({}::regclass) FROM {}").format(
        sql.Literal(name), sql.Identifier(name)))
    rows, size = cursor.fetchone()
    return rows, size


def _blocker(cursor, name: str, until: datetime | None) -> str | None:
    """Why the partition must stay, or None. The pending check reads the partial index of pending rows."""
    cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE status = 'aktiv'").format(sql.Identifier(name)))
    (pending,) = cursor.fetchone()
    if pending:
        return f"{pending} predictions not judged yet"
    cursor.execute(sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE evaluation_result IN ('success', 'failed') "
        "AND (%(until)s::timestamptz IS NULL OR evaluated_at >= %(until)s::timestamptz))"
    ).format(sql.Identifier(name)), {"until": until})
    if cursor.fetchone()[0]:
        return "verdicts not yet in the quality aggregates"
    return None


def expired_partitions(cursor, *, now: datetime) -> list[tuple[str, str, date]]:
    """(name, kind, day) of each day partition whose whole day is older than its kind's retention."""
    expired = []
    for kind, days in retention_days().items():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        for day, name in sorted(partitions.day_partitions(cursor, kind).items()):
            if partitions.day_start(day + timedelta(days=1)) <= cutoff:
                expired.append((name, kind, day))
    return expired


def _drop(name: str, kind: str, until: datetime | None) -> str | None:
    """Drop one partition in a transaction of its own; the reason it was kept, or None when dropped.

    The partition is locked against writes before its checks, so no row can arrive between check and drop.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(name)))
            blocker = _blocker(cursor, name, until)
            if blocker is None:
                cursor.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                    sql.Identifier(partitions.kind_table(kind)), sql.Identifier(name)))
                cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            return blocker
    except OperationalError as error:  # a lock timeout: readers or writers were busy; the next run tries again
        return f"busy ({str(error).strip().splitlines()[0]})"


def maintain(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Create the partitions ahead (moving rows out of the DEFAULT partitions), then drop what retention allows.

    With `dry_run`, nothing changes: the report says what would be created and dropped.
    """
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run)
    until = aggregated_until()
    with connection.cursor() as cursor:
        if dry_run:
            report.created = partitions.missing_partitions(cursor, today=partitions.utc_today(now))
        else:
            try:
                with transaction.atomic():
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    report.created = partitions.ensure_partitions(cursor, today=partitions.utc_today(now))
            except OperationalError as error:  # busy: the DEFAULT partitions catch rows until the next run
                report.creation_failed = str(error).strip().splitlines()[0]
        candidates = expired_partitions(cursor, now=now)
        for name, kind, day in candidates:
            rows, size = _figures(cursor, name)
            if dry_run:
                blocker = _blocker(cursor, name, until)
            else:
                blocker = _drop(name, kind, until)
            fate = PartitionFate(name=name, kind=kind, day=day, rows=rows, bytes=size, kept_because=blocker)
            (report.kept if blocker else report.dropped).append(fate)
    return report


def _size(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""


def describe(report: RetentionReport) -> list[str]:
    """The report as lines for an operator."""
    days = retention_days()
    lines = [f"retention: predictions {days['other'] or 'forever'} days, alerts {days['alert'] or 'forever'} days"
             .replace("forever days", "kept forever")]
    verb_create, verb_drop = ("would create", "would drop") if report.dry_run else ("created", "dropped")
    lines += [f"{verb_create} partition {name}" for name in report.created]
    if report.creation_failed:
        lines.append(f"partitions not created (tried again next hour): {report.creation_failed}")
    lines += [f"{verb_drop} {fate.name}: {fate.rows:,} rows, {_size(fate.bytes)}" for fate in report.dropped]
    lines += [f"kept {fate.name} ({fate.rows:,} rows, {_size(fate.bytes)}): {fate.kept_because}"
              for fate in report.kept]
    freed = sum(fate.bytes for fate in report.dropped)
    lines.append(f"{len(report.dropped)} partitions {verb_drop}, {sum(f.rows for f in report.dropped):,} rows, "
                 f"{_size(freed)} {'would be ' if report.dry_run else ''}freed")
    return lines
