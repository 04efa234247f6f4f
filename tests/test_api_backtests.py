"""Backtests over REST: queue a run (202), follow it to its summary, page and download its rows, cancel it; bad
input names the field and stores nothing. The run is executed as the worker's task does (services.execute_run)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django_q.models import OrmQ

from backtests import services
from backtests.models import BacktestRow, BacktestRun, RunState
from tests.test_listener import ROWS, insert, register_xgb

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = datetime.fromisoformat(ROWS[0][1])
LAST = max(datetime.fromisoformat(row[1]) for row in ROWS)
RANGE = {"start": FIRST.isoformat(), "end": LAST.isoformat()}


def post_run(api_client, model_id: int, **body):
    return api_client.post(f"/api/models/{model_id}/backtests", {**RANGE, **body}, format="json")


def csv_text(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_a_queued_run_is_followed_to_its_summary(api_client, market):
    insert(market, ROWS)
    model = register_xgb()
    answer = post_run(api_client, model.pk, threshold=0.6)
    assert answer.status_code == 202, answer.content
    run = answer.json()
    assert run["state"] == "queued" and run["progress"] == 0 and run["summary"] is None
    assert run["threshold"] == 0.6 and run["requested_by"] == "api-user"
    assert run["links"] == {"self": f"/api/backtests/{run['id']}", "rows": f"/api/backtests/{run['id']}/rows",
                            "rows_csv": f"/api/backtests/{run['id']}/rows?format=csv",
                            "page": f"/backtests/{run['id']}/"}
    assert answer["Location"] == run["links"]["self"]
    task = OrmQ.objects.get()  # handed to the worker once committed
    assert task.task["func"] == services.RUN_TASK and task.task["args"] == (run["id"],)

    services.execute_run(run_id=run["id"])  # what the worker's task does
    done = api_client.get(run["links"]["self"]).json()
    assert done["state"] == "done" and done["progress"] == 1 and done["error"] == ""
    assert done["rows_total"] == done["rows_done"] == len(ROWS)
    assert done["started_at"] and done["finished_at"]
    summary = done["summary"]
    assert summary["rows_replayed"] == len(ROWS) and summary["threshold"] == 0.6
    assert summary["alerts"] == BacktestRow.objects.filter(run_id=run["id"], tag="alert").count() > 0
    assert [row["threshold"] for row in summary["thresholds"]] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
                                                                   0.95]
    assert summary["live"]["live_predictions"] == 0  # the model never ran live here

    second = post_run(api_client, model.pk).json()  # the model's own threshold
    assert second["threshold"] == float(model.alert_threshold)
    listed = api_client.get(f"/api/models/{model.pk}/backtests").json()
    assert listed["total"] == 2 and [r["id"] for r in listed["backtests"]] == [second["id"], run["id"]]
    newest, older = listed["backtests"]
    assert newest["state"] == "queued" and newest["alerts"] is None and "summary" not in newest
    assert older["alerts"] == summary["alerts"] and older["success_rate"] == summary["success_rate"]
    page = api_client.get(f"/api/models/{model.pk}/backtests?limit=1&offset=1").json()
    assert [r["id"] for r in page["backtests"]] == [run["id"]] and page["total"] == 2


def test_rows_page_as_json_and_stream_as_the_commands_csv(api_client, market, tmp_path):
    insert(market, ROWS)
    model = register_xgb()
    run_id = post_run(api_client, model.pk).json()["id"]
    services.execute_run(run_id=run_id)
    stored = BacktestRow.objects.filter(run_id=run_id).count()

    page = api_client.get(f"/api/backtests/{run_id}/rows?limit=5&offset=2").json()
    assert page["total"] == stored and page["limit"] == 5 and page["offset"] == 2 and len(page["rows"]) == 5
    assert set(page["rows"][0]) == {"coin_id", "timestamp", "probability", "prediction", "tag", "evaluation_result",
                                    "actual_price_change_pct"}
    times = [row["timestamp"] for row in api_client.get(f"/api/backtests/{run_id}/rows?limit=1000").json()["rows"]]
    assert times == sorted(times, key=datetime.fromisoformat) and len(times) == stored

    csv_file = tmp_path / "rows.csv"
    call_command("backtest", str(model.pk), "--start", RANGE["start"], "--end", RANGE["end"], "--rows-csv",
                 str(csv_file))
    expected = csv_file.read_bytes().decode()
    by_format = api_client.get(f"/api/backtests/{run_id}/rows?format=csv")
    assert by_format.status_code == 200 and by_format["Content-Type"].startswith("text/csv")
    assert by_format.streaming and csv_text(by_format) == expected
    assert expected.count("\n") == stored + 1
    by_accept = api_client.get(f"/api/backtests/{run_id}/rows", HTTP_ACCEPT="text/csv")
    assert by_accept["Content-Type"].startswith("text/csv") and csv_text(by_accept) == expected

    # Errors stay JSON, also when CSV was asked for.
    missing = api_client.get("/api/backtests/987654/rows?format=csv")
    assert missing.status_code == 404 and missing.json() == {"detail": "backtest 987654 not found"}
    bad_format = api_client.get(f"/api/backtests/{run_id}/rows?format=xml")
    assert bad_format.status_code == 400 and "format" in bad_format.json()
    bad_page = api_client.get(f"/api/backtests/{run_id}/rows?limit=0")
    assert bad_page.status_code == 400 and "limit" in bad_page.json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"end": (FIRST - timedelta(minutes=1)).isoformat()}, "end"),
        ({"start": (FIRST - timedelta(days=9)).isoformat(), "end": (FIRST - timedelta(days=8)).isoformat()}, "start"),
        ({"end": (FIRST + timedelta(days=40)).isoformat()}, "end"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"start": "yesterday"}, "start"),
        ({"start": None}, "start"),
    ],
)
def test_bad_input_answers_400_naming_the_field_and_stores_nothing(api_client, market, body, field):
    insert(market, ROWS[:50])
    answer = post_run(api_client, register_xgb().pk, **body)
    assert answer.status_code == 400, answer.content
    errors = answer.json()
    assert list(errors) == [field] and isinstance(errors[field], list) and errors[field][0]
    assert not BacktestRun.objects.exists() and not OrmQ.objects.exists()


def test_unknown_ids_answer_404_json(api_client, market):
    insert(market, ROWS[:50])
    for answer in (post_run(api_client, 987654), api_client.get("/api/models/987654/backtests")):
        assert answer.status_code == 404 and answer.json() == {"detail": "model 987654 not found"}
    for answer in (api_client.get("/api/backtests/987654"), api_client.delete("/api/backtests/987654")):
        assert answer.status_code == 404 and answer.json() == {"detail": "backtest 987654 not found"}
    assert not BacktestRun.objects.exists()


def test_delete_cancels_a_queued_run_at_once_and_asks_a_running_one_to_stop(api_client, market):
    insert(market, ROWS)
    model = register_xgb()
    queued = post_run(api_client, model.pk).json()
    cancelled = api_client.delete(f"/api/backtests/{queued['id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "failed" and cancelled.json()["error"] == "cancelled before it started"
    assert services.execute_run(run_id=queued["id"]).state == RunState.FAILED  # the worker does not start it

    running = post_run(api_client, model.pk).json()
    BacktestRun.objects.filter(pk=running["id"]).update(state=RunState.RUNNING)
    stopping = api_client.delete(f"/api/backtests/{running['id']}")
    assert stopping.status_code == 202
    assert stopping.json()["state"] == "running" and stopping.json()["cancel_requested"] is True

    finished = post_run(api_client, model.pk).json()
    services.execute_run(run_id=finished["id"])
    unchanged = api_client.delete(f"/api/backtests/{finished['id']}")
    assert unchanged.status_code == 200 and unchanged.json()["state"] == "done"
    assert unchanged.json()["summary"]["rows_replayed"] == len(ROWS)


def test_auth_as_every_endpoint_token_or_session(market, django_user_model):
    insert(market, ROWS[:50])
    model = register_xgb()
    anonymous = Client()
    assert anonymous.get(f"/api/models/{model.pk}/backtests").status_code in (401, 403)
    assert anonymous.post(f"/api/models/{model.pk}/backtests", json.dumps(RANGE),
                          content_type="application/json").status_code in (401, 403)
    assert not BacktestRun.objects.exists()
    session = Client(enforce_csrf_checks=False)
    session.force_login(django_user_model.objects.create_user(username="page-user", password="unused-pw-123"))
    assert session.get(f"/api/models/{model.pk}/backtests").json()["total"] == 0
