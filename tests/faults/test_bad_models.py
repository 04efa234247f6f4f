"""Broken models next to a good one, under a real listener process: the good one keeps predicting, and each broken
one is visible in the health check (`checks.models.errored`), the admin's model list (`load_error`) and /metrics
(`ml_errors_total{type="model_load"}`).

Broken in two ways: a corrupt artifact (garbage where a skops file should be), and a model whose artifact expects
more features than its record lists (the record was edited after registration: a missing feature *name* would just
be filled with 0, but missing columns cannot be invented).
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils.html import escape

from modelregistry.models import ActiveModel, ModelArtifact, ModelSource
from modelregistry.services import register_model
from predictions.models import ModelPrediction
from tests import parity
from tests.conftest import test_database_url
from tests.faults.processes import Processes, wait_for
from tests.test_listener import MINT, ROWS, insert, newest_rows, register_rf, register_xgb, rows_of
from tests.test_metrics import sample

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_LOAD_ERRORS = 'ml_errors_total{type="model_load"}'


def register_short_xgb() -> ActiveModel:
    """The xgb fixture under another id, its feature list then cut to ten names (the artifact wants all of them)."""
    meta = parity.meta("xgb")
    meta.update(id=9101, name="xgb_missing_features")
    model = register_model(artifact=parity.artifact("model_xgb.json"), meta=meta, source=ModelSource.COMMAND_LINE,
                           filename="model_xgb.json", activate=True)
    ActiveModel.objects.filter(pk=model.pk).update(min_scan_interval_seconds=0, features=meta["features"][:10])
    return model


def test_broken_models_are_reported_everywhere_and_the_good_one_keeps_predicting(market, client, admin_client,
                                                                                  tmp_path):
    good = register_xgb()
    corrupt = register_rf()
    ModelArtifact.objects.filter(model=corrupt).update(content=b"\x80 not a skops file", format="skops")
    short = register_short_xgb()
    full_features = parity.meta("xgb")["features"]
    mints = sorted({row[MINT] for row in ROWS})
    errors_before = sample(client.get("/metrics").content.decode(), MODEL_LOAD_ERRORS)

    processes = Processes(tmp_path)
    try:
        listener = processes.listener(test_database_url())
        insert(market, [row for mint in mints for row in rows_of(mint)[:-10]])
        for step in range(10, 0, -1):  # a short stream up to every coin's newest row
            insert(market, [rows_of(mint)[-step] for mint in mints])
            time.sleep(0.05)
        newest = newest_rows(mints)
        wait_for(lambda: all(ModelPrediction.objects.filter(active_model=good, coin_id=mint, prediction_timestamp=ts)
                             .exists() for mint, ts in newest.items()),
                 timeout=60, message=lambda: "the good model stopped predicting\n" + processes.report())
        assert listener.alive()

        # Visible in the database, health, admin and metrics.
        corrupt.refresh_from_db()
        short.refresh_from_db()
        assert corrupt.load_error.startswith("cannot load: cannot read the skops model file")
        assert short.load_error == f"cannot load: the model expects {len(full_features)} features but its record " \
                                   "lists only 10"
        assert not ModelPrediction.objects.filter(active_model__in=[corrupt, short]).exists()
        assert ModelPrediction.objects.filter(active_model=good).count() >= len(mints)

        checks = client.get("/api/health").json()["checks"]
        assert checks["models"]["errored"] == sorted([corrupt.pk, short.pk])
        assert checks["models"]["active"] == 3
        assert checks["listener"]["alive"] is True

        changelist = admin_client.get(reverse("admin:modelregistry_activemodel_changelist")).content.decode()
        assert escape(corrupt.load_error) in changelist and escape(short.load_error) in changelist

        metrics = client.get("/metrics").content.decode()
        assert sample(metrics, MODEL_LOAD_ERRORS) >= errors_before + 2  # counted by the listener process
        assert f"model {short.pk} (" in listener.output() and "skipped: cannot load" in listener.output()

        # Fixed while the listener runs: the next batch loads it, predicts, and clears the error.
        ActiveModel.objects.filter(pk=short.pk).update(features=full_features)
        later = [list(rows_of(mint)[-1]) for mint in mints]
        for row in later:
            row[1] = row[1].replace("+00:00", "").rsplit(".", 1)[0] + ".999999+00:00"  # later within the same second
        insert(market, later)
        wait_for(lambda: ModelPrediction.objects.filter(active_model=short).count() == len(mints), timeout=30,
                 message=lambda: "the fixed model did not predict\n" + processes.report())
        short.refresh_from_db()
        assert short.load_error is None
        assert client.get("/api/health").json()["checks"]["models"]["errored"] == [corrupt.pk]
        assert listener.stop() == 0
    finally:
        processes.stop_all()
