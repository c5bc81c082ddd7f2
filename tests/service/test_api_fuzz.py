"""Property-based fuzzing of the whole API from its own OpenAPI document.

Schemathesis generates requests for every operation (valid and invalid ones) and
checks every response: never a 5xx, status codes, content types and bodies as
the document says. It runs in-process against its own database and queue, with
no worker, so jobs it manages to create are never trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from store import Session
from store import queries as q
from store.settings import Settings
from tests.service.conftest import (
    apply_env,
    create_database,
    delete_redis_keys,
    drop_database,
    environment,
)

from .api_helpers import store_arrays

EXAMPLES_PER_OPERATION = 40
# A body can match the document's types and still be refused on meaning (a CSV
# without the named target column, a network that does not fit its dataset), so
# "schema-valid data is accepted" does not hold here. Every other check does:
# no 5xx, documented status codes, content types, headers and response bodies.
SEMANTIC_CHECKS = [positive_data_acceptance]


@pytest.fixture(scope="module")
def fuzz_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    previous_bind = Session.kw.get("bind")
    url = create_database("fuzz")
    env = environment(url, "fuzz", Path(tmp_path_factory.mktemp("fuzz")))
    # Small limits keep generated datasets and networks cheap while still reachable.
    settings_ = replace(apply_env(env), max_epochs=50, max_body_bytes=256 * 1024, sse_seconds=0.3)
    yield settings_
    delete_redis_keys(env["BROKER_PREFIX"])
    Session.configure(bind=previous_bind)
    drop_database(url)


@pytest.fixture(scope="module")
def api_schema(fuzz_settings: Settings) -> schemathesis.BaseSchema:
    from api import create_app

    return schemathesis.openapi.from_wsgi("/openapi.json", create_app(fuzz_settings))


@pytest.fixture(scope="module")
def auth(fuzz_settings: Settings) -> dict[str, str]:
    with Session.begin() as session:
        key = q.create_api_key(session, "fuzzer")
        # Something for the id-taking operations to find now and then.
        store_arrays(session, "seed", [[0.0, 1.0], [1.0, 0.0]], [[1.0], [0.0]], owner="fuzzer")
    return {"Authorization": f"Bearer {key}"}


def fuzz(operation: Any, auth: dict[str, str], calls: dict[str, int]) -> None:
    """Run generated cases of one operation, counting the requests sent."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=auth, excluded_checks=SEMANTIC_CHECKS)
        calls[operation.label] = calls.get(operation.label, 0) + 1

    run()


def test_api_conforms_to_its_document(
    api_schema: schemathesis.BaseSchema, auth: dict[str, str]
) -> None:
    # Driven by hand rather than through schemathesis' pytest plugin, whose lazy
    # fixture loader does not work with this pytest.
    calls: dict[str, int] = {}
    for result in api_schema.get_all_operations():
        fuzz(result.ok(), auth, calls)
    print(f"fuzzed {sum(calls.values())} requests over {len(calls)} operations: {calls}")
    assert len(calls) >= 14
    assert all(count >= 1 for count in calls.values()), calls
