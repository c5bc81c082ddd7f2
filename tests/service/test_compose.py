"""docker-compose.yml: valid by the Compose specification, its services wired in
order, and every command it, the Dockerfile and the README give the image
understood by the `backprop` CLI. No Docker engine runs here: the commands run
for real, from the image's contents, in test_packaging.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import cli
from store.settings import declared
from tests.service.image import COMPOSE, compose_services, instructions
from tests.service.processes import ROOT

BIN = Path(sys.executable).parent
# Services built from this repository's Dockerfile.
OURS = [name for name, service in compose_services().items() if "build" in service]
# One-off commands the documentation gives: docker compose run --rm SERVICE COMMAND...
RUN_COMMAND = re.compile(r"docker compose run --rm ([\w-]+) (backprop [^`\n]+)")


def parsed(args: list[str]) -> click.Context:
    """``backprop ARGS`` parsed as the CLI parses it, without running it.

    Raises click.UsageError where the CLI would refuse the command line.
    """
    assert args[0] == "backprop", args
    command: click.Command = cli.main
    context = click.Context(command, info_name=args[0])
    name, rest = args[0], args[1:]
    while isinstance(command, click.Group):
        if not rest:
            raise click.UsageError("a subcommand is missing", context)
        name, *rest = rest
        found = command.get_command(context, name)
        if found is None:
            raise click.UsageError(f"no such command {name!r}", context)
        if isinstance(found, click.Group):
            context = click.Context(found, info_name=name, parent=context)
        command = found
    return command.make_context(name, rest, parent=context)


def documented_runs() -> list[tuple[str, str]]:
    """(service, command) of every `docker compose run` in the README and the compose file."""
    text = (ROOT / "README.md").read_text() + COMPOSE.read_text()
    return RUN_COMMAND.findall(text)


def test_compose_file_follows_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema", path=str(BIN)) or "check-jsonschema"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_wires_health_and_order() -> None:
    services = compose_services()
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker"}
    assert set(OURS) == {"migrate", "api", "worker"}
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def assert_understood(command: list[str]) -> None:
    """The CLI accepts ``command`` and takes each ``--option value`` in it as written."""
    context = parsed(command)
    given = dict(zip(command, command[1:], strict=False))
    for word, value in given.items():
        if word.startswith("--"):
            assert str(context.params[word[2:].replace("-", "_")]) == value, (command, word)


@pytest.mark.parametrize("service", OURS)
def test_service_command_parses(service: str) -> None:
    assert_understood(compose_services()[service]["command"])


def test_documented_one_off_commands_parse() -> None:
    runs = documented_runs()
    assert ("migrate", "backprop keys create --owner me") in runs  # how a compose user gets a key
    for service, command in runs:
        assert service in OURS, service
        assert_understood(command.split())


def test_image_default_command_parses() -> None:
    cmd = [args for keyword, args in instructions(ROOT / "Dockerfile") if keyword == "CMD"][-1]
    assert json.loads(cmd)[:2] == ["backprop", "up"]
    assert_understood(json.loads(cmd))


@pytest.mark.parametrize("service", OURS)
def test_service_environment_names_known_variables(service: str) -> None:
    """Each variable is a setting or an option of the service's command (a typo is neither)."""
    options = {
        param.envvar
        for param in parsed(compose_services()[service]["command"]).command.params
        if isinstance(param.envvar, str)
    }
    known = {spec.env for _, spec in declared()} | options
    assert set(compose_services()[service].get("environment", {})) <= known


def test_parsing_refuses_what_the_cli_refuses() -> None:
    for bad in (["backprop", "wrker"], ["backprop", "worker", "--concurrency", "two"],
                ["backprop", "keys", "create"], ["backprop", "db"]):  # fmt: skip
        with pytest.raises(click.UsageError):
            parsed(bad)
