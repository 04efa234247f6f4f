"""A collector's INSERT into coin_metrics queues durable work and rings the coin_metrics_insert doorbell."""

from __future__ import annotations

import json

import pytest

from pumpserver.database import open_connection

COLLECTOR_COLUMNS = "mint, timestamp, phase_id_at_time, price_open, price_high, price_low, price_close, volume_sol"
ROW = "(%s, %s, %s, 0.000000028, 0.000000029, 0.000000027, 0.000000028, 1.5)"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener():
    with open_connection(autocommit=True) as conn:
        conn.execute("LISTEN coin_metrics_insert")
        yield conn


def drain(listener, *, expected: int):
    return [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=expected)]


def queued(conn):
    return conn.execute(
        "SELECT q.mint, q.data_timestamp, q.phase_id, q.coin_metric_id = m.id "
        "FROM coin_metrics_queue q JOIN coin_metrics m ON m.id = q.coin_metric_id ORDER BY q.id"
    ).fetchall()


def test_single_row_insert_notifies_with_the_spec_payload_and_queues_the_row(listener):
    with open_connection() as collector:
        collector.execute(
            f"INSERT INTO coin_metrics ({COLLECTOR_COLUMNS}) VALUES {ROW}",
            ["Coin1pump", "2025-11-20T11:00:04.691296+01:00", 1],
        )
        assert drain(listener, expected=1) == []  # nothing before commit
        collector.commit()
        [payload] = drain(listener, expected=1)
        assert payload == {"mint": "Coin1pump", "timestamp": payload["timestamp"], "phase_id": 1}
        assert payload["timestamp"].startswith("2025-11-20T10:00:04.691296")
        rows = queued(collector)
    assert [(mint, phase, same_row) for mint, _ts, phase, same_row in rows] == [("Coin1pump", 1, True)]


def test_multi_row_insert_queues_every_row_and_notifies_once(listener):
    values = ", ".join([ROW] * 5)
    params = []
    for i in range(5):
        params += [f"Coin{i}pump", f"2025-11-20T10:00:0{i}+00:00", None if i == 4 else 2]
    with open_connection() as collector:
        collector.execute(f"INSERT INTO coin_metrics ({COLLECTOR_COLUMNS}) VALUES {values}", params)
        collector.commit()
        payloads = drain(listener, expected=5)
        rows = queued(collector)
    assert len(payloads) == 1  # one doorbell per statement; the queue holds the work
    assert payloads[0]["mint"].startswith("Coin")
    assert sorted(mint for mint, *_ in rows) == [f"Coin{i}pump" for i in range(5)]
    assert {phase for _mint, _ts, phase, _same in rows} == {2, None}
    assert all(same_row for *_, same_row in rows)


def test_rolled_back_insert_leaves_no_work_and_no_notification(listener):
    with open_connection() as collector:
        collector.execute(f"INSERT INTO coin_metrics ({COLLECTOR_COLUMNS}) VALUES {ROW}", ["Gone", "2025-01-01", 1])
        collector.rollback()
        assert drain(listener, expected=1) == []
        assert collector.execute("SELECT count(*) FROM coin_metrics_queue").fetchone() == (0,)


def test_row_level_fallback_behaves_the_same(listener):
    from predictions.collector_schema import install_trigger

    with open_connection() as collector:
        with collector.cursor() as cursor:
            assert install_trigger(cursor, row_level=True) == "row"
        collector.commit()
        try:
            collector.execute(
                f"INSERT INTO coin_metrics ({COLLECTOR_COLUMNS}) VALUES {ROW}, {ROW}",
                ["RowA", "2025-01-01T00:00:00Z", 1, "RowB", "2025-01-01T00:00:00Z", 1],
            )
            collector.commit()
            payloads = drain(listener, expected=2)
            assert sorted(p["mint"] for p in payloads) == ["RowA", "RowB"]
            assert sorted(mint for mint, *_ in queued(collector)) == ["RowA", "RowB"]
        finally:
            with collector.cursor() as cursor:
                assert install_trigger(cursor) == "statement"
            collector.commit()
