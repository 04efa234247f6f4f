"""Every write to the model registry. One `register_model` serves the command line, imports and uploads."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import record_deleted, record_object_change, snapshot
from inference import loading
from modelregistry.metadata import MetadataError, registry_fields
from modelregistry.models import (
    IGNORE_SECONDS_MAX,
    SEND_MODES,
    TAG_LIMIT_MAX,
    ActiveModel,
    ArtifactFormat,
    CoinFilterMode,
    ModelArtifact,
    ModelSource,
)
from modelregistry.training_service import TrainingServiceClient, TrainingServiceError
from pumpserver.webhook_urls import InvalidWebhookUrl, validate_webhook_url


class RegistrationError(ValueError):
    """The model was not registered; the message says why in one line. Nothing was stored."""


def register_model(
    *,
    artifact: bytes,
    meta: dict,
    source: str,
    filename: str | None = None,
    activate: bool = False,
    trust_pickle: bool = False,
    training_details: dict | None = None,
) -> ActiveModel:
    """Validate an artifact against its metadata and store it as the model's newest version.

    The artifact must load, be of the declared type, and take the listed features. A model whose training-service
    id is already registered gets a new version (its settings are kept); otherwise a new entry is created.
    Pickles are only loaded when the caller vouches for their origin, and are stored converted to a safe
    format, so no process ever unpickles them again. `training_details` (the built-in training's own record of the
    run) is merged into the details taken from `meta`.
    """
    try:
        fields = registry_fields(meta)
        fmt = loading.detect_format(artifact, filename)
        loaded = loading.load_model(artifact, fmt=fmt, trust_pickle=trust_pickle)
        if loaded.model_type != fields["model_type"]:
            raise MetadataError(
                f"the file holds a {loaded.model_type} model but the metadata says {fields['model_type']}"
            )
        loading.validate_against_metadata(loaded, features=fields["features"])
        if fmt == ArtifactFormat.PICKLE:
            artifact, fmt = loading.export_portable(loaded)
    except (MetadataError, loading.ModelLoadError) as exc:
        raise RegistrationError(str(exc)) from exc

    with transaction.atomic():
        model = None
        if fields["model_id"] is not None:
            model = ActiveModel.objects.select_for_update().filter(model_id=fields["model_id"]).first()
        now = timezone.now()
        before = snapshot(model) if model is not None else None
        if model is None:
            model = ActiveModel(source=source, is_active=False)
        for name, value in fields.items():
            setattr(model, name, value)
        if training_details:
            model.training_details = {**(model.training_details or {}), **training_details}
        model.downloaded_at = now
        model.load_error = None
        model.load_error_at = None
        if activate and not model.is_active:
            model.is_active = True
            model.activated_at = now
        model.save()
        stored = _add_artifact(model=model, content=artifact, fmt=fmt)
        record_object_change(action="create" if before is None else "update", obj=model, before=before,
                             after={**snapshot(model), "artifact_version": stored.version, "artifact_sha256": stored.sha256})
    return model


def _add_artifact(*, model: ActiveModel, content: bytes, fmt: str) -> ModelArtifact:
    latest = model.artifacts.aggregate(latest=Max("version"))["latest"] or 0
    model.artifacts.filter(is_current=True).update(is_current=False)
    return ModelArtifact.objects.create(
        model=model,
        version=latest + 1,
        format=fmt,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        is_current=True,
    )


def mark_model_errored(*, model_id: int, error: str) -> None:
    """Record why a model cannot serve (visible in admin and API); it stays active so a fix takes effect."""
    ActiveModel.objects.filter(pk=model_id).update(load_error=error[:2000], load_error_at=timezone.now())


def clear_model_errors(*, model_ids: list[int]) -> None:
    """Forget the load errors of these models (they served again); one statement, rows without an error untouched."""
    if not model_ids:
        return
    ActiveModel.objects.filter(pk__in=model_ids, load_error__isnull=False).update(load_error=None, load_error_at=None)


# --- model lifecycle: activate, deactivate, rename, delete, training metrics ---------------------------------------


class OperationRefused(Exception):
    """The model exists but the operation cannot be carried out; the message says why (the API answers 400)."""


ACTIVATION_FIELDS = ("is_active", "activated_at", "load_error", "load_error_at")


def activate_model(*, active_model_id: int) -> ActiveModel:
    """Activate a model after checking that its current artifact loads and fits its record.

    A model that does not load stays as it was, its load_error records why, and OperationRefused says why.
    `activated_at` keeps the first activation time. Raises ActiveModel.DoesNotExist for an unknown id.
    """
    model = ActiveModel.objects.get(pk=active_model_id)
    artifact = model.artifacts.filter(is_current=True).only("content", "format").first()
    try:
        if artifact is None:
            raise loading.ModelLoadError("no stored model file; import or upload the model again")
        loaded = loading.load_model(bytes(artifact.content), fmt=artifact.format)
        loading.validate_against_metadata(loaded, features=list(model.features), model_type=model.model_type)
    except loading.ModelLoadError as exc:
        mark_model_errored(model_id=model.pk, error=str(exc))
        raise OperationRefused(f"Model file is invalid: {exc}") from exc

    with transaction.atomic():
        model = ActiveModel.objects.select_for_update().get(pk=active_model_id)
        before = snapshot(model, fields=ACTIVATION_FIELDS)
        model.is_active = True
        model.activated_at = model.activated_at or timezone.now()
        model.load_error = None
        model.load_error_at = None
        model.save(update_fields=[*ACTIVATION_FIELDS, "updated_at"])
        record_object_change(action="update", obj=model, before=before, after=snapshot(model, fields=ACTIVATION_FIELDS))
    return model


def deactivate_model(*, active_model_id: int) -> ActiveModel:
    """Stop new predictions of the model; its pending predictions are still evaluated."""
    return _update_fields(active_model_id=active_model_id, values={"is_active": False})


EMPTY_NAME = "the name must not be empty"


def rename_model(*, active_model_id: int, custom_name: str) -> ActiveModel:
    """Set the display name, verbatim. An empty or blank name is refused (InvalidSetting naming `custom_name`) for
    every caller: a model always has a name to show. Raises ActiveModel.DoesNotExist for an unknown id."""
    if not isinstance(custom_name, str) or not custom_name.strip():
        raise InvalidSetting("custom_name", EMPTY_NAME)
    return _update_fields(active_model_id=active_model_id, values={"custom_name": custom_name})


def delete_model(*, active_model_id: int) -> ActiveModel:
    """Delete the model with its predictions, scan-cache rows and artifacts; returns the deleted row's values.

    The webhook log is kept (its rows are per URL, not per model).
    """
    with transaction.atomic():
        model = ActiveModel.objects.select_for_update().get(pk=active_model_id)
        record_deleted(model)
        model.delete()
    model.pk = active_model_id  # delete() clears it; callers report which model went
    return model


TRAINING_METRIC_FIELDS = (
    "training_accuracy",
    "training_f1",
    "training_precision",
    "training_recall",
    "roc_auc",
    "mcc",
    "confusion_matrix",
    "simulated_profit_pct",
)


def refresh_training_metrics(*, active_model_id: int, client: TrainingServiceClient | None = None) -> ActiveModel:
    """Re-read the model's training metrics from the training service and overwrite the stored ones.

    Raises ActiveModel.DoesNotExist, OperationRefused (the model did not come from the training service) and
    TrainingServiceError (the lookup failed or the record is unusable; carries the status to answer with).
    """
    model = ActiveModel.objects.get(pk=active_model_id)
    if model.model_id is None:
        raise OperationRefused(f"Model {active_model_id} did not come from the training service (it has no model_id)")
    record = (client or TrainingServiceClient()).get_model(model.model_id)
    try:
        fields = registry_fields(record)
    except MetadataError as exc:
        raise TrainingServiceError(
            f"the training service sent an unusable record for model {model.model_id}: {exc}", 502
        ) from exc
    return _update_fields(
        active_model_id=active_model_id, values={name: fields[name] for name in TRAINING_METRIC_FIELDS}
    )


# --- per-model settings ---------------------------------------------------------------------------------------------


class InvalidSetting(ValueError):
    """Setting values are refused: `errors` maps every refused setting to why (the API answers 400 naming each);
    `field` is the first of them, and `message` says everything in one line."""

    def __init__(self, field: str, message: str, *, errors: dict[str, str] | None = None):
        self.errors = errors or {field: message}
        self.field = field
        self.message = "; ".join(self.errors.values())
        super().__init__(self.message)


# Inclusive ranges of the numeric settings; the API serializers document the same bounds.
SETTING_RANGES = {
    "alert_threshold": (0, 1),
    "ignore_bad_seconds": (0, IGNORE_SECONDS_MAX),
    "ignore_positive_seconds": (0, IGNORE_SECONDS_MAX),
    "ignore_alert_seconds": (0, IGNORE_SECONDS_MAX),
    "min_scan_interval_seconds": (0, IGNORE_SECONDS_MAX),
    "max_log_entries_per_coin_negative": (0, TAG_LIMIT_MAX),
    "max_log_entries_per_coin_positive": (0, TAG_LIMIT_MAX),
    "max_log_entries_per_coin_alert": (0, TAG_LIMIT_MAX),
}


def _in_range(field: str, value):
    low, high = SETTING_RANGES[field]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not low <= value <= high:
        raise InvalidSetting(field, f"{field} must be a number from {low} to {high}, not {value!r}")
    if field != "alert_threshold" and not float(value).is_integer():
        raise InvalidSetting(field, f"{field} must be a whole number, not {value!r}")
    return value if field == "alert_threshold" else int(value)


def _webhook_url(field: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # "" clears the model's URL: the global N8N_WEBHOOK_URL applies again
    try:
        return validate_webhook_url(value)
    except InvalidWebhookUrl as exc:
        raise InvalidSetting(field, str(exc)) from exc


def _send_modes(field: str, value) -> list[str]:
    modes = [value] if isinstance(value, str) else value
    if not isinstance(modes, (list, tuple)) or not modes:
        raise InvalidSetting(field, f"{field} must be a non-empty list of {SEND_MODES}")
    unknown = [mode for mode in modes if mode not in SEND_MODES]
    if unknown:
        raise InvalidSetting(field, f"{field} accepts {SEND_MODES}, not {unknown}")
    return list(dict.fromkeys(modes))


def _coin_filter_mode(field: str, value) -> str:
    if value not in CoinFilterMode.values:
        raise InvalidSetting(field, f"{field} must be one of {CoinFilterMode.values}, not {value!r}")
    return value


def _coin_whitelist(field: str, value) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(mint, str) and mint.strip() for mint in value):
        raise InvalidSetting(field, f"{field} must be a list of coin mint addresses")
    return list(dict.fromkeys(mint.strip() for mint in value))


def _flag(field: str, value) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting(field, f"{field} must be true or false, not {value!r}")
    return value


_SETTING_CLEANERS = {
    **{field: _in_range for field in SETTING_RANGES},
    "n8n_webhook_url": _webhook_url,
    "n8n_send_mode": _send_modes,
    "n8n_enabled": _flag,
    "send_ignored_to_n8n": _flag,
    "coin_filter_mode": _coin_filter_mode,
    "coin_whitelist": _coin_whitelist,
}
SETTING_FIELDS = tuple(_SETTING_CLEANERS)


def update_model_settings(*, active_model_id: int, **changes) -> ActiveModel:
    """Change the given per-model settings (any of SETTING_FIELDS); settings not given stay as they are.

    Values are checked here for every caller (API, pages, MCP): ranges, send modes, filter mode, and the webhook
    URL policy (`""` or None clears the URL). Refused values raise InvalidSetting naming every one of them, and
    nothing is stored. The listener reads settings every batch, so a change applies to the next coin event.
    Raises ActiveModel.DoesNotExist for an unknown id.
    """
    return _update_fields(active_model_id=active_model_id, values=_cleaned_settings(changes))


def check_model_settings(**changes) -> dict[str, str]:
    """What update_model_settings would refuse in `changes`, per setting (empty: nothing); stores nothing.

    For a form that found problems of its own: the values it accepted are checked here too, so every problem is
    reported at once.
    """
    try:
        _cleaned_settings(changes)
    except InvalidSetting as exc:
        return exc.errors
    return {}


def _cleaned_settings(changes: dict) -> dict:
    """The values to store; InvalidSetting names every refused one (not just the first)."""
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise TypeError(f"not a per-model setting: {', '.join(unknown)}")
    cleaned, errors = {}, {}
    for field, value in changes.items():
        try:
            cleaned[field] = _SETTING_CLEANERS[field](field, value)
        except InvalidSetting as exc:
            errors[field] = exc.message
    if errors:
        first = next(iter(errors))
        raise InvalidSetting(first, errors[first], errors=errors)
    return cleaned


def _update_fields(*, active_model_id: int, values: dict) -> ActiveModel:
    with transaction.atomic():
        model = ActiveModel.objects.select_for_update().get(pk=active_model_id)
        before = snapshot(model, fields=tuple(values))
        for field, value in values.items():
            setattr(model, field, value)
        model.save(update_fields=[*values, "updated_at"])
        record_object_change(action="update", obj=model, before=before, after=snapshot(model, fields=tuple(values)))
    return model


__all__ = [
    "RegistrationError",
    "register_model",
    "mark_model_errored",
    "clear_model_errors",
    "ModelSource",
    "OperationRefused",
    "activate_model",
    "deactivate_model",
    "rename_model",
    "delete_model",
    "refresh_training_metrics",
    "InvalidSetting",
    "SETTING_RANGES",
    "SETTING_FIELDS",
    "update_model_settings",
    "check_model_settings",
]


# --- import from the training service, uploads ---------------------------------------------------------------------


class ModelImportError(Exception):
    """An import failed and nothing was stored; `status` is the HTTP status the API answers with (400/404/502/503)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class AlreadyImported(ModelImportError):
    """The training-service id is registered and the caller did not ask for a new version (the spec's T3 400)."""

    def __init__(self, model: ActiveModel):
        state = "active" if model.is_active else "paused"
        super().__init__(
            f"Model {model.model_id} is already imported (active_model_id: {model.pk}, status: {state}). "
            'Send {"new_version": true} to import its current file as a new version.',
            400,
        )
        self.model = model


UPLOAD_PICKLE_REFUSED = (
    "pickle/joblib files are not accepted as uploads (loading them can run arbitrary code); upload the model as "
    "XGBoost JSON/UBJ (booster.save_model('model.json')) or as a skops file (skops.io.dump(forest, 'model.skops'))"
)


def import_from_training_service(
    *, model_id: int, activate: bool = True, allow_new_version: bool = True, client=None
) -> ActiveModel:
    """Fetch a READY model's record and file from the training service and register it.

    The training service is the one trusted source of pickles (its URL is set by the operator); the file is loaded,
    checked against the record and stored converted to a portable format. An id that is already registered gets a
    new version (its settings are kept) unless `allow_new_version` is false, which raises AlreadyImported (the
    spec's T3 answer). Every failure raises ModelImportError with the reason and its HTTP status; nothing is
    stored then (never a placeholder model, unlike the existing server).
    """
    if not allow_new_version:
        existing = ActiveModel.objects.filter(model_id=model_id).first()
        if existing is not None:
            raise AlreadyImported(existing)
    client = client or TrainingServiceClient()
    try:
        record = client.get_model(model_id)
    except TrainingServiceError as exc:
        if exc.status == 404:
            raise ModelImportError(f"Model {model_id} not found in the training service ({exc.message})", 404) from exc
        raise ModelImportError(exc.message, exc.status) from exc
    if record.get("id") is not None and record.get("id") != model_id:
        raise ModelImportError(
            f"the training service answered the request for model {model_id} with model {record.get('id')!r}", 502
        )
    status = record.get("status")
    if status != "READY" or record.get("is_deleted"):
        state = "deleted" if record.get("is_deleted") else f"status {status!r}"
        raise ModelImportError(f"Model {model_id} is not READY in the training service ({state})", 400)
    meta = {**record, "id": model_id}
    try:
        registry_fields(meta)
    except MetadataError as exc:
        raise ModelImportError(f"Model {model_id} cannot be imported: {exc}", 400) from exc
    try:
        artifact = client.download(model_id)
    except TrainingServiceError as exc:
        raise ModelImportError(exc.message, exc.status) from exc

    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if not allow_new_version:
                    existing = ActiveModel.objects.filter(model_id=model_id).first()
                    if existing is not None:
                        raise AlreadyImported(existing)
                model = register_model(
                    artifact=artifact,
                    meta=meta,
                    source=ModelSource.TRAINING_SERVICE,
                    filename=f"model_{model_id}.pkl",
                    activate=activate,
                    trust_pickle=pickles_trusted_from(client),
                )
                ActiveModel.objects.filter(pk=model.pk).update(model_file_url=client.download_url(model_id))
                model.model_file_url = client.download_url(model_id)
                return model
        except RegistrationError as exc:
            raise ModelImportError(f"Model file is invalid: {exc}", 400) from exc
        except IntegrityError:
            # Another request registered the same id at the same moment.
            existing = ActiveModel.objects.filter(model_id=model_id).first()
            if existing is None or attempt == 2:
                raise
            if not allow_new_version:
                raise AlreadyImported(existing) from None
    raise AssertionError("unreachable")


def upload_model(*, file_bytes: bytes, filename: str | None, meta: dict, activate: bool = True) -> ActiveModel:
    """Register an uploaded model file: XGBoost JSON/UBJ or skops only, never a pickle.

    The file is checked (format, model type, feature count/names against `meta`) before anything is stored;
    failures raise RegistrationError with the reason. `meta` is the training service's record shape; with an `id`
    that is already registered the upload becomes that model's new version.
    """
    try:
        fmt = loading.detect_format(bytes(file_bytes), filename)
    except loading.ModelLoadError as exc:
        raise RegistrationError(str(exc)) from exc
    if fmt == ArtifactFormat.PICKLE:
        raise RegistrationError(UPLOAD_PICKLE_REFUSED)
    return register_model(
        artifact=bytes(file_bytes),
        meta=meta,
        source=ModelSource.UPLOAD,
        filename=filename,
        activate=activate,
        trust_pickle=False,
    )


__all__ += [
    "ModelImportError",
    "AlreadyImported",
    "UPLOAD_PICKLE_REFUSED",
    "import_from_training_service",
    "upload_model",
]


def pickles_trusted_from(client) -> bool:
    """Pickles can run code: they are trusted only from the training service the operator set in the environment.

    A URL saved through the settings page, the config API or MCP is good for listing and for safe formats, but a
    token holder could point it at a server of their own, so its pickles are refused.
    """
    configured = (settings.TRAINING_SERVICE_API_URL or "").strip().rstrip("/")
    return bool(configured) and client.base_url == configured
