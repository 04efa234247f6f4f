"""OpenAPI links: which answer gives the id another operation takes (a drf-spectacular postprocessing hook).

A client (or a stateful test generator such as schemathesis) follows them: the model an import, an upload or the
model list returns can be read, changed, backtested and deleted next; the backtest a POST queues can be read and
cancelled. Every operation whose path takes the named parameter is a target, so new endpoints are linked too.
"""

from __future__ import annotations

# (operationId, status) of an answer → {path parameter: JSON pointer into that answer's body}
LINK_SOURCES = {
    ("models_import", "201"): {"active_model_id": "/active_model_id"},
    ("models_upload", "201"): {"active_model_id": "/active_model_id"},
    ("api_models_retrieve", "200"): {"active_model_id": "/models/0/id"},
    ("model_backtests_create", "202"): {"run_id": "/id"},
    ("model_backtests_list", "200"): {"run_id": "/backtests/0/id"},
}
METHODS = ("get", "put", "post", "patch", "delete")


def add_links(result, generator, request, public):
    """Adds `links` to the answers of LINK_SOURCES; targets are the operations taking exactly one of their ids."""
    operations = [
        (path, method, operation)
        for path, item in result.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    ]
    by_id = {operation.get("operationId"): operation for _path, _method, operation in operations}
    for (source_id, status), pointers in LINK_SOURCES.items():
        response = by_id.get(source_id, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = {}
        for path, _method, operation in operations:
            taken = [parameter for parameter in pointers if "{" + parameter + "}" in path]
            if len(taken) != 1 or path.count("{") != 1:
                continue
            parameter = taken[0]
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": {parameter: f"$response.body#{pointers[parameter]}"},
            }
        if links:
            response["links"] = links
    return result
