"""Client of the original training service (spec api-and-behaviour.md §1.3): list, look up and download models.

Base URL: the operator's setting (`pumpserver.config.training_service_url()`: the stored UI value, else
`TRAINING_SERVICE_API_URL`), which already ends in `/api`. Every call has a 10 s budget (`TRAINING_SERVICE_TIMEOUT`
overrides it) covering connect, headers and body.

Every failure is a `TrainingServiceError(message, status)` whose status is what our API answers:

* 503 the service is not configured;
* 502 it is down, times out, answers 5xx (or another unexpected status), sends invalid JSON, a list that is not a
  JSON array, a record that is not an object, or a file larger than the cap;
* 404 it answers 404 for the model.

Unlike the existing server we never turn a failure into "no models" or a dummy model file (weakness 15).
"""

from __future__ import annotations

import json
import time

import requests
from django.conf import settings

from pumpserver import config

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024  # model files of the training service are a few MB
MAX_JSON_BYTES = 50 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024


class TrainingServiceError(Exception):
    """A training-service call failed; `status` is the HTTP status our API answers with (404, 502 or 503)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


def configured_base_url() -> str | None:
    """The operator-configured base URL (stored UI setting wins over TRAINING_SERVICE_API_URL), or None."""
    return config.training_service_url()


class TrainingServiceClient:
    """`list_models()`, `get_model(id)` and `download(id)` against `{base}/models…`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        max_download_bytes: int | None = None,
        session: requests.Session | None = None,
    ):
        self.base_url = (base_url if base_url is not None else configured_base_url() or "").strip().rstrip("/")
        self.timeout = float(timeout or getattr(settings, "TRAINING_SERVICE_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
        self.max_download_bytes = int(
            max_download_bytes
            or getattr(settings, "TRAINING_SERVICE_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_DOWNLOAD_BYTES)
        )
        self.session = session or requests.Session()

    # -- the three calls ------------------------------------------------------------------------------------------

    def list_models(self) -> list[dict]:
        """READY, not deleted models: `GET {base}/models?status=READY&is_deleted=false` (must be a JSON array)."""
        data = self._json("/models", params={"status": "READY", "is_deleted": "false"}, what="the model list")
        if not isinstance(data, list):
            raise TrainingServiceError(
                f"the training service answered GET /models with a JSON {type(data).__name__}, not an array", 502
            )
        return [item for item in data if isinstance(item, dict)]

    def get_model(self, model_id: int) -> dict:
        """One model record: `GET {base}/models/{id}` (must be a JSON object)."""
        data = self._json(f"/models/{int(model_id)}", what=f"model {model_id}")
        if not isinstance(data, dict):
            raise TrainingServiceError(
                f"the training service answered GET /models/{model_id} with a JSON {type(data).__name__}, "
                "not an object",
                502,
            )
        return data

    def download(self, model_id: int) -> bytes:
        """The model file: `GET {base}/models/{id}/download`, at most `max_download_bytes`."""
        content = self._get(
            f"/models/{int(model_id)}/download", limit=self.max_download_bytes, what=f"the file of model {model_id}"
        )
        if not content:
            raise TrainingServiceError(f"the training service sent an empty file for model {model_id}", 502)
        return content

    def download_url(self, model_id: int) -> str:
        return f"{self.base_url}/models/{int(model_id)}/download"

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _json(self, path: str, *, what: str, params: dict | None = None):
        body = self._get(path, params=params, limit=MAX_JSON_BYTES, what=what)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainingServiceError(
                f"the training service sent invalid JSON for GET {path} ({type(exc).__name__}: {exc})", 502
            ) from None

    def _get(self, path: str, *, limit: int, what: str, params: dict | None = None) -> bytes:
        if not self.base_url:
            raise TrainingServiceError(
                "the training service is not configured: set TRAINING_SERVICE_API_URL (or training_service_url "
                "in the configuration)",
                503,
            )
        url = self.base_url + path
        deadline = time.monotonic() + self.timeout
        try:
            with self.session.get(url, params=params, timeout=self.timeout, stream=True) as response:
                if response.status_code == 404:
                    raise TrainingServiceError(f"the training service does not know {what} (HTTP 404)", 404)
                if response.status_code != 200:
                    raise TrainingServiceError(
                        f"the training service answered GET {path} with HTTP {response.status_code}", 502
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise TrainingServiceError(_too_large(what, limit), 502)
                chunks, size = [], 0
                for chunk in response.iter_content(_CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise TrainingServiceError(_too_large(what, limit), 502)
                    if time.monotonic() > deadline:
                        raise requests.Timeout(f"no complete answer within {self.timeout:g} s")
                    chunks.append(chunk)
                return b"".join(chunks)
        except TrainingServiceError:
            raise
        except requests.Timeout:
            raise TrainingServiceError(
                f"the training service at {self.base_url} did not answer GET {path} within {self.timeout:g} s", 502
            ) from None
        except requests.RequestException as exc:
            raise TrainingServiceError(
                f"the training service at {self.base_url} is unreachable ({_reason(exc)})", 502
            ) from None


def _too_large(what: str, limit: int) -> str:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return f"{what} is larger than {size}; refused"


def _reason(exc: Exception) -> str:
    text = str(exc)
    # requests nests the OS error deep inside; its last part ("[Errno 111] Connection refused") is the useful one
    for marker in ("[Errno", "Name or service not known", "Temporary failure"):
        if marker in text:
            return text[text.index(marker):].rstrip("')\"]")
    return type(exc).__name__


def available_model(record: dict) -> dict:
    """A training-service record as the AvailableModel object (spec §1.1): the time-based target from
    `params._time_based` when present, else the top-level fields."""
    params = record.get("params") if isinstance(record.get("params"), dict) else {}
    time_based = params.get("_time_based") if isinstance(params.get("_time_based"), dict) else None
    source = time_based if time_based is not None else record
    features = record.get("features")
    phases = record.get("phases")
    return {
        "id": record.get("id"),
        "name": _text(record.get("name")),
        "model_type": _text(record.get("model_type")),
        "target_variable": _text(record.get("target_variable")),
        "target_operator": _text(record.get("target_operator")),
        "target_value": _number(record.get("target_value")),
        "future_minutes": _whole(source.get("future_minutes")),
        "price_change_percent": _number(
            source.get("min_percent_change" if time_based is not None else "price_change_percent")
        ),
        "target_direction": _text(source.get("direction" if time_based is not None else "target_direction")),
        "features": [str(f) for f in features] if isinstance(features, list) else [],
        "phases": [p for p in phases if _whole(p) is not None] if isinstance(phases, list) else None,
        "training_accuracy": _number(record.get("training_accuracy")),
        "training_f1": _number(record.get("training_f1")),
        "training_precision": _number(record.get("training_precision")),
        "training_recall": _number(record.get("training_recall")),
        "created_at": _text(record.get("created_at")),
    }


# A record with an odd value still lists (the value becomes null) instead of failing the whole list.
def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _whole(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
