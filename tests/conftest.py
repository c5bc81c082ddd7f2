"""Hooks for the whole test session."""

from __future__ import annotations

import pytest

# The test files that take longest (each a minute or more of one process in CI, as
# of 2026-11-30), longest first. `make test`'s parallel part hands whole files to
# its two processes in collection order; one of these started last would leave
# the other process idle for as long as it runs.
LONGEST_FIRST = (
    "test_reliability.py",
    "test_fresh_clone.py",
    "test_packaging.py",
    "test_cli.py",
    "test_readme.py",
    "test_dashboard_experiments.py",
    "test_outage.py",
    "test_registry_live.py",
    "test_prediction_faults.py",
    "test_cli_client.py",
    "test_api_fuzz.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest in order
