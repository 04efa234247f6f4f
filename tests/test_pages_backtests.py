"""The backtest pages with Django's test client: the form (defaults, inline errors, queueing), a run's progress and
its charts once done (beside the model's live figures and the reproduction proof), every run, and the compare page.
Queued runs are executed as the worker's task does (backtests.services.execute_run)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django_q.models import OrmQ

from backtests import services
from backtests.models import BacktestRun, RunState
from predictions.models import ModelPrediction
from pumpserver.role_services import set_role
from pumpserver.scopes import ADMIN
from tests.test_listener import MINT, ROWS, insert, register_rf, register_xgb, rows_of, run_batch

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = datetime.fromisoformat(ROWS[0][1])
LAST = max(datetime.fromisoformat(row[1]) for row in ROWS)
HX = {"HTTP_HX_REQUEST": "true"}
FORM = {"start": FIRST.strftime("%Y-%m-%dT%H:%M:%S"), "end": (LAST + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")}


@pytest.fixture
def client(django_user_model) -> Client:
    client = Client()
    user = django_user_model.objects.create_user(username="operator", password="a-long-test-password-1")
    set_role(user=user, scope=ADMIN)
    client.force_login(user)
    return client


def finished_run(model, **kwargs) -> BacktestRun:
    run = services.create_run(active_model_id=model.pk, start=FIRST, end=LAST, **kwargs)
    run = services.execute_run(run_id=run.pk)
    assert run.state == RunState.DONE, run.error
    return run


def test_every_backtest_page_answers_a_logged_in_user_and_sends_others_to_login(client, market):
    insert(market, ROWS)
    model = register_xgb()
    run = finished_run(model)
    queued = services.create_run(active_model_id=model.pk, start=FIRST, end=LAST)
    pages = [f"/models/{model.pk}/backtests/", "/backtests/", f"/backtests/{run.pk}/", f"/backtests/{queued.pk}/",
             f"/backtests/compare/?runs={run.pk},{queued.pk}", "/backtests/compare/"]
    for url in pages:
        assert client.get(url).status_code == 200, url
        assert Client().get(url).status_code == 302, url
    detail = client.get(f"/models/{model.pk}/").content.decode()
    assert f'href="/models/{model.pk}/backtests/"' in detail and ">Backtest</a>" in detail
    assert client.get("/models/987654/backtests/").status_code == 404
    assert client.get("/backtests/987654/").status_code == 404


def test_the_form_defaults_to_the_last_day_of_data_and_the_models_threshold(client, market):
    insert(market, ROWS)
    model = register_xgb(alert_threshold=0.65)
    page = client.get(f"/models/{model.pk}/backtests/").content.decode()
    # the fixture spans 2.5 hours: the form starts at its first minute and ends after its last one
    assert f'value="{FIRST.strftime("%Y-%m-%dT%H:%M")}"' in page
    assert f'value="{(LAST + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")}"' in page
    assert 'name="threshold"' in page and 'value="0.65"' in page
    assert "No backtests yet" in page


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"end": (FIRST - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}, "end", "must not lie before"),
        ({"threshold": "1.5"}, "threshold", "less than or equal to 1"),
        ({"threshold": "0"}, "threshold", "above 0"),
        ({"start": "yesterday"}, "start", "valid date"),
        ({"start": (FIRST - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M"),
          "end": (FIRST - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")}, "start", "no rows"),
        ({"end": (FIRST + timedelta(days=45)).strftime("%Y-%m-%dT%H:%M")}, "end", "longer than"),
    ],
)
def test_form_errors_are_shown_at_their_field_and_nothing_is_queued(client, market, change, field, message):
    insert(market, ROWS[:100])
    model = register_xgb()
    answer = client.post(f"/models/{model.pk}/backtests/", {**FORM, **change}, **HX)
    assert answer.status_code == 200
    page = answer.content.decode()
    assert f'id="field-{field}"' in page and "has-error" in page and message in page, page
    assert "Nothing was queued" in page
    assert client.post(f"/models/{model.pk}/backtests/", {**FORM, **change}).status_code == 400  # without htmx
    assert not BacktestRun.objects.exists() and not OrmQ.objects.exists()


def test_submitting_queues_a_run_whose_page_shows_progress_then_charts(client, market):
    insert(market, ROWS)
    model = register_xgb()
    answer = client.post(f"/models/{model.pk}/backtests/", {**FORM, "threshold": "0.6"}, **HX)
    run = BacktestRun.objects.get()
    assert answer.status_code == 200 and answer["HX-Redirect"] == f"/backtests/{run.pk}/"
    assert run.threshold == 0.6 and run.requested_by == "operator" and OrmQ.objects.count() == 1

    waiting = client.get(f"/backtests/{run.pk}/").content.decode()
    assert 'data-state="queued"' in waiting and "every 2s" in waiting and "Waiting for the worker" in waiting
    listed = client.get(f"/models/{model.pk}/backtests/?partial=runs", **HX).content.decode()
    assert f'id="run-{run.pk}"' in listed and "every 2s" in listed  # the list follows active runs

    services.execute_run(run_id=run.pk)
    body = client.get(f"/backtests/{run.pk}/?partial=body", **HX).content.decode()
    assert 'data-state="done"' in body and "every 2s" not in body  # polling stops
    for title in ("Replayed alert verdicts per", "Cumulative price change of judged alerts",
                  "Success rate per threshold", "Alerts per threshold", "No live alerts in this range"):
        assert title in body, title
    assert body.count("<svg") >= 5
    assert "The model did not run live in this range" in body
    assert "stored no live predictions in this range" in body
    assert f"/api/backtests/{run.pk}/rows?format=csv" in body
    summary = BacktestRun.objects.get(pk=run.pk).summary
    assert f">{summary['alerts']}<" in body
    assert "0.60 ◂" in body  # the run's threshold marked in the table


def test_a_run_beside_the_live_figures_and_the_reproduction_proof(client, market):
    """The model served rows live: one prediction (not an alert) whose history was pruned afterwards, and an alert on
    a coin whose rows are gone. The run's page shows the live figures and verdicts beside the replay's, and that
    neither live prediction was reproduced, each with its reason."""
    model = register_xgb()
    mint = rows_of(ROWS[0][MINT])
    insert(market, mint[:120])
    run_batch()
    served = ModelPrediction.objects.get(active_model=model)
    ModelPrediction.objects.filter(pk=served.pk).update(tag="negativ")
    moment = datetime.fromisoformat(mint[30][1])
    ModelPrediction.objects.create(  # an alert judged live, on a coin no longer in coin_metrics
        coin_id="GoneCoin111pump", model_id=model.model_id, active_model=model, prediction=1, probability=0.91,
        tag="alert", status="inaktiv", evaluation_result="success", actual_price_change_pct=12,
        prediction_timestamp=moment, evaluation_timestamp=moment + timedelta(minutes=10),
    )
    with market.cursor() as cursor:
        cursor.execute('DELETE FROM coin_metrics WHERE mint = %s AND "timestamp" >= %s AND "timestamp" <= %s',
                       [mint[0][MINT], mint[60][1], mint[118][1]])
    run = services.create_run(active_model_id=model.pk, start=FIRST, end=datetime.fromisoformat(mint[119][1]))
    services.execute_run(run_id=run.pk)
    page = client.get(f"/backtests/{run.pk}/").content.decode()
    assert 'id="live-figures"' in page and "Live alert verdicts per" in page
    assert "<dt>Live predictions</dt><dd>2</dd>" in page and "<dt>Live alerts</dt><dd>1</dd>" in page
    assert "<dt>Success / failed</dt><dd>1 / 0" in page
    assert "<strong>0 of 2</strong> live predictions" in page and "2 differ" in page
    assert "the history differed" in page and "not replayed" in page and "GoneCoin111pump" in page


def test_compare_shows_several_models_on_one_range(client, market):
    insert(market, ROWS)
    xgb, rf = register_xgb(), register_rf()
    runs = [finished_run(xgb), finished_run(rf)]
    page = client.get(f"/backtests/compare/?runs={runs[0].pk},{runs[1].pk}").content.decode()
    assert page.count('href="/backtests/') >= 2 and xgb.display_name in page and rf.display_name in page
    assert 'id="compare-charts"' in page and page.count("Success rate per threshold") >= 3  # combined + one per run
    assert "different ranges" not in page
    listed = client.get("/backtests/").content.decode()
    assert all(f'name="runs" value="{run.pk}"' in listed for run in runs)
    repeated = client.get(f"/backtests/compare/?runs={runs[1].pk}&runs={runs[0].pk}")
    assert repeated.status_code == 200
    assert client.get("/backtests/compare/?runs=1,x").status_code == 400
    missing = client.get("/backtests/compare/?runs=987654")
    assert missing.status_code == 404 and "No run with id 987654" in missing.content.decode()


def test_cancel_from_the_page(client, market):
    insert(market, ROWS)
    run = services.create_run(active_model_id=register_xgb().pk, start=FIRST, end=LAST)
    body = client.post(f"/backtests/{run.pk}/cancel/", **HX).content.decode()
    assert 'data-state="failed"' in body and "cancelled before it started" in body
    assert BacktestRun.objects.get(pk=run.pk).state == RunState.FAILED
