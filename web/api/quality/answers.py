"""The answers the REST endpoints, the MCP tools and the pages of live model quality share: one model's figures over
a window, and several models side by side, each in the shape of web/api/quality/serializers.py."""

from __future__ import annotations

from datetime import datetime

from modelregistry.models import ActiveModel
from modelregistry.selectors import get_model
from quality import selectors as quality_selectors
from web.api.quality import serializers as s


class ModelsNotFound(Exception):
    """Some of the ids name no model; `ids` lists them."""

    def __init__(self, ids: list[int]):
        self.ids = ids
        super().__init__(f"model{'s' if len(ids) > 1 else ''} not found: {', '.join(map(str, ids))}")


def models_of(ids: list[int]) -> list[ActiveModel]:
    """The models of `ids`, in that order; raises ModelsNotFound naming every unknown id."""
    found, missing = [], []
    for pk in ids:
        try:
            found.append(get_model(active_model_id=pk))
        except ActiveModel.DoesNotExist:
            missing.append(pk)
    if missing:
        raise ModelsNotFound(missing)
    return found


def _record(model: ActiveModel, figures: dict, window: str) -> dict:
    state = quality_selectors.settings_of(active_model_id=model.pk)
    return {
        **figures,
        "name": model.display_name,
        "window": window,
        "psi": figures.get("psi") or {},
        "psi_rows": figures.get("psi_rows", 0),
        "drifted_features": figures.get("drifted_features") or [],
        "drift_reference": figures.get("drift_reference"),
        "degraded": bool(state.degraded),
        "degraded_reasons": list(state.degraded_reasons or []) if state.degraded else [],
    }


def model_quality(model: ActiveModel, *, window: str, start: datetime | None, end: datetime) -> dict:
    """One model's live figures over [start, end) (QualitySerializer's shape)."""
    figures = quality_selectors.model_quality(active_model_id=model.pk, start=start, end=end)
    return s.QualitySerializer(_record(model, figures, window)).data


def comparison(models: list[ActiveModel], *, window: str, start: datetime | None, end: datetime) -> dict:
    """Several models over the same window, and McNemar's test per pair (CompareSerializer's shape)."""
    compared = quality_selectors.comparison(active_model_ids=[model.pk for model in models], start=start, end=end)
    records = [_record(model, figures, window) for model, figures in zip(models, compared["models"])]
    return s.CompareSerializer({"window": window, "start": start, "end": end, "models": records,
                                "pairs": compared["pairs"]}).data
