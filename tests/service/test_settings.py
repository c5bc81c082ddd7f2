"""Settings: one declaration each, the README's table made from them, bad values
refused with a one-line message naming the variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from store.settings import (
    ENV_NAMES,
    SettingsError,
    configuration_table,
    declared,
    load_settings,
)
from tests.service.processes import ROOT


def readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_readme_lists_exactly_the_declared_settings() -> None:
    rows = [line.split(" | ") for line in readme_table().splitlines()[2:]]
    documented = {row[0].strip("| `"): row[1].strip("`") for row in rows}
    # The README writes a default made from the data folder with the folder's variable.
    assert documented == {
        spec.env: spec.default.replace("{data_dir}", "<BACKPROP_DATA_DIR>") or "empty"
        for _, spec in declared()
    }
    assert readme_table() == configuration_table(), (
        "README.md's Configuration table is out of date; it should read:\n" + configuration_table()
    )


def test_defaults_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url == f"sqlite:///{tmp_path}/data/backprop.db"
    assert settings.broker_is_filesystem and settings.broker_folder == tmp_path / "data/broker"
    assert (settings.broker_prefix, settings.queue, settings.log_format) == ("", "training", "json")
    assert (settings.max_body_bytes, settings.max_attempts) == (64 * 1024 * 1024, 5)
    assert (settings.lease_seconds, settings.epoch_flush_seconds) == (30.0, 0.25)


def test_environment_overrides_and_empty_means_default(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "BACKPROP_DATA_DIR": str(tmp_path / "elsewhere"),
            "BROKER_URL": "redis://127.0.0.1:6379/3",
            "BACKPROP_MAX_EPOCHS": "12",
            "BACKPROP_LEASE_SECONDS": "2.5",
            "BACKPROP_LOG_FORMAT": "text",
            "BACKPROP_QUEUE": "",
        }
    )
    assert settings.database_url == f"sqlite:///{tmp_path}/elsewhere/backprop.db"
    assert not settings.broker_is_filesystem
    assert (settings.max_epochs, settings.lease_seconds, settings.log_format) == (12, 2.5, "text")
    assert settings.queue == "training"


def test_as_env_reproduces_the_settings(tmp_path: Path) -> None:
    changed = replace(
        load_settings({"BACKPROP_DATA_DIR": str(tmp_path)}),
        database_url="postgresql+psycopg://u@127.0.0.1:5432/x",
        broker_prefix="p:",
        max_weights=7,
        sse_seconds=0.5,
    )
    env = changed.as_env()
    assert set(env) == {spec.env for _, spec in declared()}
    assert load_settings(env) == changed


@pytest.mark.parametrize(
    ("env", "value", "reason"),
    [
        ("BACKPROP_LEASE_SECONDS", "abc", "not a finite number of seconds"),
        ("BACKPROP_SSE_SECONDS", "nan", "seconds greater than 0"),
        ("BACKPROP_CHECKPOINT_SECONDS", "0", "seconds greater than 0"),
        ("BACKPROP_MAX_EPOCHS", "1.5", "not a whole number"),
        ("BACKPROP_MAX_ATTEMPTS", "0", "whole number greater than 0"),
        ("BACKPROP_LOG_FORMAT", "xml", "one of json, text"),
        ("DATABASE_URL", "not a url", "SQLAlchemy database URL"),
        ("BROKER_URL", "redis", "broker URL"),
    ],
)
def test_bad_value_names_its_variable(env: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({env: value})
    message = str(raised.value)
    assert message.startswith(f"{env}={value!r}: ")
    assert reason in message and "\n" not in message


def test_a_bad_url_is_named_without_its_password() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"DATABASE_URL": "postgresql+psycopg://me:s3cret@db:port/x"})
    assert str(raised.value) == "DATABASE_URL: not an SQLAlchemy database URL"


def test_env_names_follow_the_declarations() -> None:
    assert ENV_NAMES["data_dir"] == "BACKPROP_DATA_DIR"
    assert list(ENV_NAMES.values()) == [spec.env for _, spec in declared()]
