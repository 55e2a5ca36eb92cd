"""Property-based fuzzing of the running app against its own OpenAPI schema: never a 5xx."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import ServeApp


@pytest.fixture(scope="module")
def app(start_app: Callable[[dict], ServeApp], tiny_settings_args: dict) -> ServeApp:
    # Rate limits stay off (see conftest): fuzzing would otherwise be answered 429s.
    return start_app(tiny_settings_args)


def test_no_input_gets_a_server_error(app: ServeApp) -> None:
    # Each operation's Hypothesis strategy driven directly: schemathesis' pytest plugin
    # (from_fixture) does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/posts",
        "POST /v1/posts/batch",
        "POST /v1/cache/warm",
        "DELETE /v1/cache",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=app.url, timeout=120)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)
            if response.status_code >= 400:
                # Every refusal uses the one error envelope.
                assert {"code", "message", "details"} <= set(response.json()["error"])

        call()
