"""The demo `make run` shows: a simulated market whose pumps have precursors a model can learn, the bundled demo
model, train_demo_model serving a model trained on the market, and the dashboard's demo banner.

The quality figures are measured as a user would see them: ROC AUC on a later time window than the training rows,
and the alert success rate (alerts at the demo threshold whose price rose by the target within the horizon, judged
like the alert evaluator: the newest row of the coin within the horizon) against the base rate (the share of all
rows whose price did so).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import roc_auc_score

from inference import loading
from inference.history import from_micros
from modelregistry.demo import (
    BUNDLED_NAME,
    DEMO_ALERT_THRESHOLD,
    DEMO_FUTURE_MINUTES,
    DEMO_MIN_PERCENT_CHANGE,
    TRAINED_NAME,
    demo_training_config,
)
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.selectors import model_artifact
from modelregistry.services import register_model
from modelregistry.training import feature_matrix, label_rows, train
from predictions.selectors import simulated_market
from pumpserver.database import open_connection
from tests.conftest import PROJECT_DIR, empty_market

pytestmark = pytest.mark.django_db(transaction=True)

START = "2025-01-01T00:00:00Z"
COINS = 60
ROWS = 13_000  # a bit over an hour of a 60-coin market
SEED = 1
THRESHOLD = float(DEMO_ALERT_THRESHOLD)


@pytest.fixture(scope="module")
def market(django_db_setup, django_db_blocker):
    """One simulated market for the module (coin_metrics is not flushed between tests; it is emptied at the end)."""
    with django_db_blocker.unblock():
        empty_market()
        call_command("simulate_market", coins=COINS, rate=1_000_000, rows=ROWS, seed=SEED, start=START,
                     stdout=StringIO())
        try:
            yield
        finally:
            empty_market()


def reached_target(mints: list[str], timestamps_us: np.ndarray) -> np.ndarray:
    """Per row: did the coin's close rise by the demo target within the horizon? Judged as the alert evaluator does:
    the newest row of the coin at most DEMO_FUTURE_MINUTES after the row, against the row's own close."""
    with open_connection() as conn:
        changes = conn.execute(
            """
            SELECT (SELECT e.price_close FROM coin_metrics e
                     WHERE e.mint = s.mint AND e."timestamp" >= s.ts AND e."timestamp" <= s.ts + %s
                     ORDER BY e."timestamp" DESC LIMIT 1) / b.price_close * 100 - 100
              FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS s(mint, ts, i)
              JOIN coin_metrics b ON b.mint = s.mint AND b."timestamp" = s.ts
             ORDER BY s.i
            """,
            [timedelta(minutes=DEMO_FUTURE_MINUTES), mints, [from_micros(int(t)) for t in timestamps_us]],
        ).fetchall()
    assert len(changes) == len(mints)
    return np.array([float(change) >= DEMO_MIN_PERCENT_CHANGE for (change,) in changes])


def judged_like_alerts(model: ActiveModel, *, since: datetime | None = None) -> dict:
    """The model's probability for every labelled row (from `since` on) as the listener computes it, with the
    ROC AUC, alert success rate and base rate against what the price really did."""
    config = demo_training_config(features=list(model.features)).validated()
    labelled = label_rows(config)
    rows = np.ones(len(labelled.coin), bool) if since is None else labelled.ts_us >= int(since.timestamp() * 1e6)
    X = feature_matrix(config, labelled.mints, labelled.coin[rows], labelled.ts_us[rows])
    content, fmt = model_artifact(active_model_id=model.pk)
    probabilities, _ = loading.load_model(content, fmt=fmt).predict_proba_positive(X)
    reached = reached_target([labelled.mints[c] for c in labelled.coin[rows]], labelled.ts_us[rows])
    alerts = probabilities >= THRESHOLD
    return {
        "rows": int(rows.sum()),
        "roc_auc": roc_auc_score(reached, probabilities),
        "alerts": int(alerts.sum()),
        "success_rate": reached[alerts].mean(),
        "base_rate": reached.mean(),
    }


def test_a_model_trained_on_the_market_learns_the_precursors_of_pumps(market):
    """train_model's code with the demo's settings (what train_demo_model runs), tested on the later quarter."""
    result = train(demo_training_config(alert_threshold=THRESHOLD, name="precursors"))
    assert result.metrics["roc_auc"] >= 0.75, result.summary()
    alerts = result.test_alerts
    assert alerts["alerts"] >= 30 and alerts["success_rate"] >= 3 * alerts["base_rate"], alerts

    figures = judged_like_alerts(result.model, since=result.split_at)
    assert figures["rows"] >= 2000
    assert figures["roc_auc"] >= 0.75, figures
    assert figures["alerts"] >= 30 and figures["success_rate"] >= 3 * figures["base_rate"], figures


def test_the_bundled_model_predicts_a_market_it_has_not_seen(market):
    """The committed model (built from another seed) on this market: it still finds the pumps."""
    call_command("ensure_demo_model", stdout=StringIO())
    bundled = ActiveModel.objects.get()
    assert bundled.model_name == BUNDLED_NAME and bundled.is_active and bundled.alert_threshold == DEMO_ALERT_THRESHOLD
    assert (bundled.future_minutes, float(bundled.price_change_percent)) == (DEMO_FUTURE_MINUTES, DEMO_MIN_PERCENT_CHANGE)
    assert bundled.training_details["demo"]["role"] == "bundled"
    assert bundled.training_details["bundled_build"]["seed"] != SEED

    figures = judged_like_alerts(bundled)
    assert figures["roc_auc"] >= 0.75, figures
    assert figures["alerts"] >= 50 and figures["success_rate"] >= 3 * figures["base_rate"], figures


def test_train_demo_model_serves_a_good_model_and_records_what_it_replaced(market, client, django_user_model):
    call_command("ensure_demo_model", stdout=StringIO())
    bundled = ActiveModel.objects.get()
    out = StringIO()
    call_command("train_demo_model", min_rows=2000, stdout=out)
    assert "serving" in out.getvalue() and "1 bundled demo model(s) deactivated" in out.getvalue()

    trained = ActiveModel.objects.get(source=ModelSource.BUILTIN_TRAINING)
    bundled.refresh_from_db()
    assert trained.is_active and trained.model_name == TRAINED_NAME and not bundled.is_active
    assert trained.alert_threshold == DEMO_ALERT_THRESHOLD and float(trained.roc_auc) >= 0.75
    demo = trained.training_details["demo"]
    assert demo["role"] == "trained_here" and demo["replaced"] == [{"id": bundled.pk, "name": BUNDLED_NAME}]
    assert "ROC AUC" in demo["reason"] and "at least 0.75 needed" in demo["reason"]
    assert bundled.training_details["demo"]["replaced_by"]["id"] == trained.pk

    client.force_login(django_user_model.objects.create_user(username="viewer", password="pw-123456789"))
    banner = re.sub(r"\s+", " ", client.get("/").content.decode())
    assert 'id="demo-banner"' in banner
    assert f"<strong>Serving</strong> <a href=\"/models/{trained.pk}/\">{TRAINED_NAME}</a>" in banner
    assert "trained here by train_demo_model" in banner and f"It replaced <a href=\"/models/{bundled.pk}/\">" in banner

    out = StringIO()
    call_command("train_demo_model", stdout=out)
    assert "trained on this market already" in out.getvalue() and ActiveModel.objects.count() == 2


def test_train_demo_model_keeps_the_bundled_model_when_the_trained_one_is_weak(market):
    call_command("ensure_demo_model", stdout=StringIO())
    out = StringIO()
    call_command("train_demo_model", min_rows=2000, min_roc_auc=0.999, stdout=out)
    assert "below 0.999: deleted it; the bundled model keeps serving" in out.getvalue()
    assert "gave up" in out.getvalue()
    assert list(ActiveModel.objects.values_list("model_name", "is_active")) == [(BUNDLED_NAME, True)]


def test_train_demo_model_leaves_a_registry_with_own_models_alone(market):
    fixture = PROJECT_DIR / "tests" / "fixtures" / "parity_public"
    meta = {**json.loads((fixture / "model_xgb.meta.json").read_text()), "id": None, "name": "my own model"}
    register_model(artifact=(fixture / "model_xgb.json").read_bytes(), meta=meta, source=ModelSource.UPLOAD,
                   filename="model_xgb.json", activate=True)
    out = StringIO()
    call_command("train_demo_model", min_rows=2000, stdout=out)
    assert "holds a model of its own" in out.getvalue() and ActiveModel.objects.count() == 1
    call_command("ensure_demo_model", stdout=out)
    assert "no demo model added" in out.getvalue() and ActiveModel.objects.count() == 1


def test_the_banner_says_what_is_simulated_and_which_model_serves_why(market, client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="viewer", password="pw-123456789"))
    assert 'id="demo-banner"' not in client.get("/").content.decode()  # nothing simulated here (as far as we know)

    call_command("simulate_market", coins=5, rate=1_000_000, rows=1, seed=42, start="2030-01-01T00:00:00Z",
                 stdout=StringIO())
    record = simulated_market()
    assert (record["coins"], record["seed"], record["realtime"], record["rows"]) == (5, 42, False, 1)
    assert record["finished_at"] >= record["started_at"]
    call_command("ensure_demo_model", stdout=StringIO())
    bundled = ActiveModel.objects.get()
    text = re.sub(r"\s+", " ", client.get("/").content.decode())
    assert "The market is simulated." in text and "<code>simulate_market</code> played the collector with 5 coins at a time (seed 42)" in text
    assert "(1 rows)" in text and "% of new coins pump" in text
    assert f"<strong>Serving</strong> <a href=\"/models/{bundled.pk}/\">{BUNDLED_NAME}</a>" in text
    assert "bundled with the server" in text and "ROC AUC 0.8" in text and "of its alerts (probability ≥ 0.8)" in text
    assert "train_demo_model</code> trains" not in text  # only said while the market runs
