"""CSV exports of a model's predictions and of alerts, from the API and the pages: the filters apply, every row comes
(no 1,000-row cap), the rows stream from a server-side cursor, and errors stay JSON."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.utils import timezone
from rest_framework.test import APIClient

from modelregistry.models import ActiveModel
from predictions.log_selectors import EXPORT_COLUMNS
from predictions.models import ModelPrediction
from pumpserver.tokens import issue_api_token
from tests.test_pages import HX, make_model
from tests.test_pages import client as client  # noqa: F401  (the logged-in client fixture)
from tests.test_pages import user as user  # noqa: F401

pytestmark = pytest.mark.django_db

ROWS = 2_500  # more than the API's 1,000-row page limit


def _fill(model: ActiveModel, count: int, *, coin: str = "coin", start=None) -> None:
    """`count` predictions a minute apart, newest first by index: every 10th an evaluated alert, the rest negative."""
    start = start or timezone.now()
    ModelPrediction.objects.bulk_create([
        ModelPrediction(
            coin_id=f"{coin}{i % 7}", active_model=model, model_id=model.model_id, prediction=int(i % 10 == 0),
            probability=0.9 if i % 10 == 0 else 0.1, tag="alert" if i % 10 == 0 else "negativ",
            status="inaktiv" if i % 20 == 0 else "aktiv", evaluation_result="success" if i % 20 == 0 else None,
            actual_price_change_pct=Decimal("12.5000") if i % 20 == 0 else None,
            price_close_at_prediction=Decimal("0.000000028"),
            prediction_timestamp=start - timedelta(minutes=i), evaluation_timestamp=start - timedelta(minutes=i - 5),
        )
        for i in range(count)
    ], batch_size=1000)


def _read(response) -> list[dict]:
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",") == list(EXPORT_COLUMNS)
    return rows


@pytest.fixture
def models():
    model, other = make_model("exported", model_id=77), make_model("other")
    _fill(model, ROWS)
    _fill(other, 30, coin="elsewhere")
    return model, other


def test_a_models_predictions_as_csv_from_the_api(api_client, models):
    model, other = models
    response = api_client.get(f"/api/models/{model.pk}/predictions.csv")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="model-{model.pk}-predictions.csv"'
    rows = _read(response)
    assert len(rows) == ROWS  # all of them, not a page
    assert {row["active_model_id"] for row in rows} == {str(model.pk)} and rows[0]["model_name"] == "exported"
    times = [row["prediction_timestamp"] for row in rows]
    assert times == sorted(times, reverse=True)  # newest first
    first = rows[0]
    assert first["tag"] == "alert" and first["evaluation_result"] == "success" and first["actual_price_change_pct"] == "12.5"
    assert first["price_close_at_prediction"] == "0.000000028" and first["model_id"] == "77"

    alerts = _read(api_client.get(f"/api/models/{model.pk}/predictions.csv", {"tag": "alert", "coin_id": "coin0"}))
    assert alerts and all(row["tag"] == "alert" and row["coin_id"] == "coin0" for row in alerts)
    assert len(alerts) == sum(1 for i in range(ROWS) if i % 10 == 0 and i % 7 == 0)
    since = (timezone.now() - timedelta(minutes=100)).isoformat()
    recent = _read(api_client.get(f"/api/models/{model.pk}/predictions.csv", {"date_from": since}))
    assert len(recent) in (100, 101)
    judged = _read(api_client.get(f"/api/models/{model.pk}/predictions.csv?evaluation_statuses=success"))
    assert len(judged) == ROWS // 20


def test_csv_errors_are_json_whatever_the_client_accepts(api_client):
    model = make_model("m")
    unknown = api_client.get("/api/models/424242/predictions.csv", HTTP_ACCEPT="text/csv")
    assert unknown.status_code == 404 and unknown["Content-Type"] == "application/json"
    assert unknown.json() == {"detail": "Model 424242 not found"}
    bad = api_client.get(f"/api/models/{model.pk}/predictions.csv", {"tag": "maybe"}, HTTP_ACCEPT="text/csv")
    assert bad.status_code == 400 and "tag" in bad.json()
    assert api_client.get("/api/alerts.csv", {"status": "sometimes"}).json().keys() == {"status"}
    assert api_client.get("/api/alerts.csv", {"active_model_id": 424242}).status_code == 404
    assert APIClient().get(f"/api/models/{model.pk}/predictions.csv").status_code == 401
    assert api_client.get(f"/api/models/{model.pk}/predictions.csv", HTTP_ACCEPT="text/csv").status_code == 200


def test_alerts_as_csv_from_the_api(api_client, models):
    model, other = models
    rows = _read(api_client.get("/api/alerts.csv"))
    assert len(rows) == ROWS // 10 + 3 and {row["tag"] for row in rows} == {"alert"}
    mine = _read(api_client.get("/api/alerts.csv", {"active_model_id": model.pk, "status": "success"}))
    assert len(mine) == ROWS // 20 and {row["evaluation_result"] for row in mine} == {"success"}
    pending = _read(api_client.get("/api/alerts.csv", {"active_model_id": model.pk, "status": "pending"}))
    assert len(pending) == ROWS // 10 - ROWS // 20 and {row["status"] for row in pending} == {"aktiv"}


def test_the_rows_come_from_a_server_side_cursor_closed_when_the_download_ends(api_client, models):
    model, _ = models

    def open_cursors() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
            return cursor.fetchone()[0]

    chunks = iter(api_client.get(f"/api/models/{model.pk}/predictions.csv").streaming_content)
    first = next(chunks)
    assert first.startswith(b"id,prediction_timestamp,") and first.count(b"\n") == 1000  # a chunk, not everything
    assert open_cursors() == 1  # the rest is still in PostgreSQL
    assert sum(chunk.count(b"\n") for chunk in chunks) == ROWS + 1 - 1000
    assert open_cursors() == 0

    stopped = api_client.get(f"/api/models/{model.pk}/predictions.csv")
    next(iter(stopped.streaming_content))
    assert open_cursors() == 1
    # The client goes away: the server stops reading and closes the response. Here through the test client's
    # wrapper around the content, which closes the response as a server would and keeps the test's connection.
    stopped._iterator.close()
    assert open_cursors() == 0


def test_under_asgi_the_csv_is_sent_in_chunks_as_it_is_read(models, django_user_model):
    model, _ = models
    user = django_user_model.objects.create_user(username="asgi", password="pw-asgi-12345")
    key = issue_api_token(user=user).key

    async def download():
        response = await AsyncClient().get(f"/api/models/{model.pk}/predictions.csv",
                                           headers={"Authorization": f"Token {key}"})
        assert response.status_code == 200 and response.is_async  # an async iterator: daphne sends each chunk when it is read, it collects nothing
        return [chunk async for chunk in response.streaming_content]

    chunks = async_to_sync(download)()
    assert len(chunks) >= 3 and sum(chunk.count(b"\n") for chunk in chunks) == ROWS + 1


def test_pages_download_what_their_filters_select(client, models):
    model, other = models
    page = client.get(f"/models/{model.pk}/?tag=alert&coin=coin3").content.decode()
    assert f'href="/models/{model.pk}/predictions.csv?tag=alert&amp;coin=coin3"' in page
    partial = client.get(f"/models/{model.pk}/?partial=predictions&tag=negativ", **HX).content.decode()
    assert f'href="/models/{model.pk}/predictions.csv?partial=predictions' not in partial
    assert f'/models/{model.pk}/predictions.csv?tag=negativ' in partial
    rows = _read(client.get(f"/models/{model.pk}/predictions.csv?tag=alert&coin=coin3"))
    assert len(rows) == sum(1 for i in range(ROWS) if i % 10 == 0 and i % 7 == 3)
    assert len(_read(client.get(f"/models/{model.pk}/predictions.csv"))) == ROWS

    alerts_page = client.get(f"/alerts/?model={model.pk}&status=success").content.decode()
    assert f'href="/alerts.csv?model={model.pk}&amp;status=success"' in alerts_page
    alerts = _read(client.get(f"/alerts.csv?model={model.pk}&status=success"))
    assert len(alerts) == ROWS // 20 and {row["active_model_id"] for row in alerts} == {str(model.pk)}
    everything = client.get("/alerts.csv")
    assert everything["Content-Disposition"] == 'attachment; filename="alerts.csv"'
    assert len(_read(everything)) == ROWS // 10 + 3


def test_page_downloads_need_a_login(models):
    model, _ = models
    for path in (f"/models/{model.pk}/predictions.csv", "/alerts.csv"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_csv_endpoints_are_in_the_openapi_schema(api_client):
    paths = api_client.get("/api/schema/?format=json").json()["paths"]
    for path in ("/api/models/{active_model_id}/predictions.csv", "/api/alerts.csv"):
        answers = paths[path]["get"]["responses"]
        assert "text/csv" in answers["200"]["content"] and {"400", "404"} <= set(answers), path
    names = {parameter["name"] for parameter in paths["/api/alerts.csv"]["get"]["parameters"]}
    assert names == {"active_model_id", "status", "coin_id", "date_from", "date_to"}
