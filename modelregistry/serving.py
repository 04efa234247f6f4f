"""Registered models as the engine runs them: settings snapshots re-read every batch (one query), so setting
changes apply at once, and the per-process model cache reading artifacts from the registry."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from inference.features import DEFAULT_WINDOWS
from inference.scoring import ModelCache, ServedModel
from modelregistry.models import ActiveModel, ModelArtifact

CAP_FIELDS = {
    "negativ": "max_log_entries_per_coin_negative",
    "positiv": "max_log_entries_per_coin_positive",
    "alert": "max_log_entries_per_coin_alert",
}


def send_modes(value) -> tuple[str, ...]:
    """n8n_send_mode as a tuple: a legacy scalar string (the old C2 endpoint wrote one) is a one-element list."""
    if value is None:
        return ("all",)
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _positive_or_none(value: Decimal | None) -> float | None:
    """The webhook's convention for target_value/price_change_percent: 0 or missing is null."""
    return float(value) if value else None


def served_model(model: ActiveModel, artifact: tuple | None) -> ServedModel:
    """The snapshot of a registry row and its current artifact (id, sha256, version) that the engine runs."""
    params = model.params or {}
    windows = params.get("feature_engineering_windows") or DEFAULT_WINDOWS
    whitelist = None
    if model.coin_filter_mode == "whitelist":
        whitelist = frozenset(model.coin_whitelist or ())  # an empty whitelist admits no coin
    return ServedModel(
        id=model.pk,
        model_id=model.model_id,
        name=model.display_name,
        model_type=model.model_type,
        target_variable=model.target_variable,
        target_operator=model.target_operator,
        target_value=_positive_or_none(model.target_value),
        future_minutes=model.future_minutes,
        price_change_percent=_positive_or_none(model.price_change_percent),
        target_direction=model.target_direction,
        features=tuple(model.features),
        phases=tuple(sorted(set(model.phases))) if model.phases else None,
        engineered=bool(params.get("use_engineered_features")),
        windows=tuple(int(w) for w in windows),
        alert_threshold=float(model.alert_threshold),
        whitelist=whitelist,
        ignore_bad_seconds=model.ignore_bad_seconds,
        ignore_positive_seconds=model.ignore_positive_seconds,
        ignore_alert_seconds=model.ignore_alert_seconds,
        min_scan_interval_seconds=model.min_scan_interval_seconds,
        caps={tag: getattr(model, field) for tag, field in CAP_FIELDS.items()},
        n8n_enabled=model.n8n_enabled is not False,  # NULL (older rows of the existing server) means enabled
        n8n_webhook_url=model.n8n_webhook_url or None,
        n8n_send_mode=send_modes(model.n8n_send_mode),
        send_ignored_to_n8n=bool(model.send_ignored_to_n8n),
        total_predictions=model.total_predictions,
        last_prediction_at=model.last_prediction_at,
        artifact_id=artifact[0] if artifact else None,
        artifact_sha256=artifact[1] if artifact else None,
        artifact_version=artifact[2] if artifact else None,
        updated_at=model.updated_at,
        load_error=model.load_error,
    )


def active_served_models() -> list[ServedModel]:
    """Active models in the existing server's order (active first, newest first), with their current artifact."""
    return _served(_SERVED_SQL.format(where="m.is_active", order="ORDER BY m.created_at DESC"), [])


def served_model_by_id(*, active_model_id: int) -> ServedModel:
    """One model, active or not, as the engine would run it now; raises ActiveModel.DoesNotExist."""
    served = _served(_SERVED_SQL.format(where="m.id = %s", order=""), [active_model_id])
    if not served:
        raise ActiveModel.DoesNotExist(f"no model with id {active_model_id}")
    return served[0]


# Models and their current artifact (at most one: model_artifacts_one_current) in one statement, written out: the
# listener reads them for every batch, and compiling the ORM's two queries again each time cost more than running them.
_SERVED_SQL = """
SELECT m.*, a.id AS current_artifact_id, a.sha256 AS current_artifact_sha256,
       a.version AS current_artifact_version
  FROM prediction_active_models m
  LEFT JOIN model_artifacts a ON a.model_id = m.id AND a.is_current
 WHERE {where}
 {order}
"""


def _served(sql: str, params: list) -> list[ServedModel]:
    return [
        served_model(model, None if model.current_artifact_id is None else
                     (model.current_artifact_id, model.current_artifact_sha256, model.current_artifact_version))
        for model in ActiveModel.objects.raw(sql, params)
    ]


# libpq's input buffer grows to the largest message the connection ever received and keeps that size for the
# connection's life: a 19 MB forest read whole arrives as 39 MB of hex and leaves 64 MB allocated (48 MB resident)
# in every process that loaded it. Read in pieces, the buffer stays a few MB.
ARTIFACT_PIECE_BYTES = 1 << 20
_ARTIFACT_PIECE_SQL = "SELECT substring(content FROM %s FOR %s) FROM model_artifacts WHERE id = %s"


def read_artifact(artifact_id: int) -> tuple[bytes, str]:
    """The stored file of an artifact and its format."""
    fmt = ModelArtifact.objects.values_list("format", flat=True).get(pk=artifact_id)
    pieces = []
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_ARTIFACT_PIECE_SQL, [len(pieces) * ARTIFACT_PIECE_BYTES + 1, ARTIFACT_PIECE_BYTES,
                                                 artifact_id])
            piece = cursor.fetchone()
            if piece is None:
                raise ModelArtifact.DoesNotExist(f"artifact {artifact_id} is gone")
            pieces.append(bytes(piece[0]))
            if len(pieces[-1]) < ARTIFACT_PIECE_BYTES:
                return b"".join(pieces), fmt


def model_cache(*, size: int) -> ModelCache:
    """A per-process cache of loaded models whose files come from the registry."""
    return ModelCache(size=size, read_artifact=read_artifact)
