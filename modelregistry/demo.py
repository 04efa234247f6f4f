"""The demo model `make run` serves until you import or train your own: the parity fixture's XGBoost model
(trained by the original training service: price_close +10 % within 5 minutes, phases 1-3)."""

import json

from pumpserver.database import BASE_DIR

DEMO_MODEL_DIR = BASE_DIR / "tests" / "fixtures" / "parity_public"


def demo_model_meta() -> dict:
    meta = json.loads((DEMO_MODEL_DIR / "model_xgb.meta.json").read_text())
    meta.update(id=None, name="demo: +10% in 5 min (XGBoost)")
    return meta
