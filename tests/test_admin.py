"""Every registered model has a working admin list, with its filters and search, for a logged-in admin."""

import pytest
from django.contrib import admin
from django.urls import reverse

from modelregistry.models import ActiveModel

pytestmark = pytest.mark.django_db


def test_every_changelist_renders(admin_client):
    ActiveModel.objects.create(model_id=1, model_name="shown", model_type="xgboost", features=["price_close"])
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = admin_client.get(url, {"q": "x"} if admin.site._registry[model].search_fields else {})
        assert response.status_code == 200, url


def test_model_change_page_shows_settings(admin_client):
    model = ActiveModel.objects.create(model_id=1, model_name="shown", model_type="xgboost", features=["a"])
    response = admin_client.get(reverse("admin:modelregistry_activemodel_change", args=[model.pk]))
    assert response.status_code == 200
    assert b"alert_threshold" in response.content


def test_market_data_is_read_only(admin_client):
    response = admin_client.get(reverse("admin:predictions_coinmetric_add"))
    assert response.status_code == 403


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
