"""Hooks the schemathesis CLI loads (SCHEMATHESIS_HOOKS=tests.schemathesis_hooks) for tests/test_api_schemathesis.py.

- Every request sent is logged as one line, `METHOD path-template status`, to FUZZ_CALL_LOG: the test counts
  what was really sent, per method, and sees every status.
- A generated training-service URL in POST /api/config is replaced by the test's local training service:
  otherwise later imports would go wherever the generator pointed them.
"""

from __future__ import annotations

import os

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = case.operation
    if operation.method.upper() == "POST" and operation.path == "/api/config" and isinstance(case.body, dict):
        if "training_service_url" in case.body:
            case.body = {**case.body, "training_service_url": os.environ["FUZZ_TRAINING_SERVICE_URL"]}


@schemathesis.hook
def after_call(context, case, response):
    with open(os.environ["FUZZ_CALL_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{case.method.upper()} {case.operation.path} {response.status_code}\n")
