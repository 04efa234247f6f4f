"""Every /api/ path answers JSON: unknown routes, ids that are not numbers, trailing slashes, error handlers; and the
existing server's other addresses (/docs, /openapi.json) and /favicon.ico."""

from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from tests.test_api_model_predictions import make_model
from web.api import errors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/nope", "/api/models/1/nope", "/api/alerts/1/2/3", "/api/"])
def test_unknown_api_routes_answer_json_404(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "No API endpoint at" in response.json()["detail"] and "/api/docs/" in response.json()["detail"]


def test_unknown_api_routes_answer_json_without_credentials_and_without_a_csrf_token(client, django_user_model):
    assert APIClient().get("/api/nope").status_code == 404
    user = django_user_model.objects.create_user(username="someone", password="pw-1234567")
    client.force_login(user)
    csrf_checking = type(client)(enforce_csrf_checks=True)
    csrf_checking.force_login(user)
    response = csrf_checking.post("/api/nope", {"x": 1})
    assert response.status_code == 404 and "detail" in response.json()


@pytest.mark.parametrize(
    "method, path, parameter",
    [
        ("get", "/api/models/abc", "active_model_id"),
        ("post", "/api/models/abc/activate", "active_model_id"),
        ("patch", "/api/models/1.5/rename", "active_model_id"),
        ("get", "/api/models/-3/statistics", "active_model_id"),
        ("get", "/api/alerts/first", "alert_id"),
        ("get", "/api/models/x/coins/COIN/details", "active_model_id"),
        ("delete", "/api/model-predictions/all", "active_model_id"),
        ("get", "/api/models/available/latest", "model_id"),
    ],
)
def test_ids_that_are_not_numbers_are_a_404_naming_the_parameter(api_client, method, path, parameter):
    response = getattr(api_client, method)(path)
    assert response.status_code == 404, response.content
    body = response.json()
    assert set(body) == {"detail", parameter} and "whole number" in body[parameter][0]
    assert body["detail"].startswith(f"{parameter}: ")


def test_ids_that_do_not_exist_or_do_not_fit_are_a_json_404(api_client):
    for path in ("/api/models/4242", "/api/models/99999999999999999999", "/api/alerts/99999999999999999999"):
        response = api_client.get(path)
        assert response.status_code == 404 and "detail" in response.json(), path


def test_a_wrong_trailing_slash_is_redirected_keeping_method_and_query(api_client):
    model = make_model()
    response = api_client.get("/api/models/?include_inactive=true")
    assert response.status_code == 307 and response["Location"] == "/api/models?include_inactive=true"
    followed = api_client.get("/api/models/", {"include_inactive": "true"}, follow=True)
    assert followed.status_code == 200 and followed.json()["total"] == 1
    post = api_client.post(f"/api/models/{model.pk}/deactivate/")
    assert post.status_code == 307 and post["Location"] == f"/api/models/{model.pk}/deactivate"
    assert api_client.get("/api/docs")["Location"] == "/api/docs/"


def test_error_handlers_answer_json_under_api_and_pages_elsewhere():
    factory = RequestFactory()
    api = factory.get("/api/models")
    page = factory.get("/models/")
    for handler, status in ((errors.handler400, 400), (errors.handler403, 403), (errors.handler404, 404)):
        answer = handler(api, Exception("x"))
        assert answer.status_code == status and answer["Content-Type"] == "application/json"
        assert handler(page, Exception("x"))["Content-Type"].startswith("text/html")
    server_error = errors.handler500(api)
    assert server_error.status_code == 500 and "server log" in json.loads(server_error.content)["detail"]
    assert errors.handler500(page)["Content-Type"].startswith("text/html")


def test_docs_openapi_json_and_favicon(client):
    docs = client.get("/docs")
    assert docs.status_code == 302 and docs["Location"] == "/api/docs/"
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "Pump Server API"
    icon = client.get("/favicon.ico")  # no login needed
    assert icon.status_code == 200 and icon["Content-Type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00" and len(icon.content) > 1000
    assert "max-age=86400" in icon["Cache-Control"]
    assert client.head("/favicon.ico").status_code == 200
