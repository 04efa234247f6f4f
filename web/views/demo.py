"""The dashboard's demo banner: what is simulated, which model serves and why (modelregistry/demo.py,
predictions/simulation.py). Shown while the market is simulated or a demo model serves."""

from __future__ import annotations

from datetime import datetime

from modelregistry.demo import DEMO_MIN_ROC_AUC, DEMO_TARGET, ROLE_BUNDLED, ROLE_TRAINED
from modelregistry.models import ActiveModel
from modelregistry.selectors import demo_models, other_models_exist
from predictions.selectors import simulated_market
from predictions.simulation import DESTINY_SHARES, PUMP, TEASE


def demo_banner() -> dict | None:
    """What the banner says, or None when there is nothing to say (no simulated market, no demo model serving)."""
    market = simulated_market()
    models = demo_models()
    serving = [_serving(model) for model in models if model.is_active]
    if market is None and not serving:
        return None
    trained_here = any(_demo(model).get("role") == ROLE_TRAINED for model in models)
    return {
        "market": market,
        "market_running": market is not None and market.get("finished_at") is None,
        "serving": serving,
        "own_models_active": other_models_exist(active=True),
        "target": DEMO_TARGET,
        "min_roc_auc": DEMO_MIN_ROC_AUC,
        "pump_pct": round(100 * DESTINY_SHARES[PUMP]),
        "false_start_pct": round(100 * DESTINY_SHARES[TEASE]),
        "retraining_pending": bool(serving) and not trained_here,
    }


def _demo(model: ActiveModel) -> dict:
    return (model.training_details or {}).get("demo") or {}


def _serving(model: ActiveModel) -> dict:
    demo = _demo(model)
    details = (model.training_details or {}).get("builtin_training") or {}
    alerts = details.get("test_alerts") or {}
    replaced_at = demo.get("at") if demo.get("role") == ROLE_TRAINED else None
    return {
        "model": model,
        "role": demo.get("role") or ROLE_BUNDLED,
        "reason": (demo.get("reason") or "the bundled demo model of an earlier version").rstrip("."),
        "replaced": demo.get("replaced") or [],
        "replaced_at": datetime.fromisoformat(replaced_at) if replaced_at else None,
        "roc_auc": model.roc_auc,
        "test_rows": details.get("test_rows"),
        "alert_threshold": alerts.get("threshold"),
        "alert_success_pct": None if alerts.get("success_rate") is None else 100 * alerts["success_rate"],
        "base_pct": None if alerts.get("base_rate") is None else 100 * alerts["base_rate"],
    }
