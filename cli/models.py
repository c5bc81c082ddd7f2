"""`backprop models`: trained models and the model registry on a running service.

Registered in :func:`cli.remote.register`; the commands talk HTTP through
:class:`cli.client.Client`, as the other client commands do.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

import click

from .client import Client
from .remote import PIPE_WIDTH, with_client

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console:
    # rich is loaded here, not with the module: every `backprop` command imports this one.
    from rich.console import Console

    terminal = Console(highlight=False)
    return terminal if terminal.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def registered_path(name: str) -> str:
    return f"/registered-models/{urllib.parse.quote(name, safe='')}"


def short(digest: str | None) -> str:
    return "-" if digest is None else digest[:12]


def when(stamp: str) -> str:
    """An ISO time to the second, as tables show it."""
    return stamp.replace("T", " ")[:19]


def loss_of(model: dict[str, Any]) -> str:
    loss = model["summary"].get("loss")
    return "-" if not isinstance(loss, int | float) else f"{loss:.6g}"


@click.group()
def models() -> None:
    """Trained models and the model registry on the service."""


@models.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the models as JSON")
@with_client
def models_list(limit: int, as_json: bool, client: Client) -> None:
    """Newest models first, with where they came from."""
    from rich.table import Table

    answer = client.request("GET", f"/models?limit={limit}")
    if as_json:
        click.echo(json.dumps(answer["models"]))
        return
    table = Table(show_edge=False, pad_edge=False)
    for heading in ("model", "job", "dataset", "spec sha256", "seed", "loss", "created"):
        table.add_column(heading, no_wrap=True)
    for model in answer["models"]:
        lineage = model["lineage"]
        dataset = "-" if lineage["dataset_id"] is None else str(lineage["dataset_id"])
        table.add_row(
            str(model["id"]),
            str(lineage["job_id"]),
            dataset,
            short(lineage["spec_sha256"]),
            "-" if lineage["seed"] is None else str(lineage["seed"]),
            loss_of(model),
            when(lineage["created_at"]),
        )
    console().print(table)


@models.command("show")
@click.argument("model_id", type=int)
@with_client
def models_show(model_id: int, client: Client) -> None:
    """A model as JSON: architecture, summary, metrics and lineage."""
    click.echo(json.dumps(client.request("GET", f"/models/{model_id}"), indent=2))


@models.command("delete")
@click.argument("model_id", type=int)
@with_client
def models_delete(model_id: int, client: Client) -> None:
    """Delete a model and its weights (refused while a registered version points at it,
    or a queued or running job uses it)."""
    client.request("DELETE", f"/models/{model_id}")
    click.echo(f"deleted model {model_id}")


@models.command("register")
@click.argument("name")
@click.argument("model_id", type=int)
@click.option("--description", default=None, help="a note kept with the version")
@click.option("--json", "as_json", is_flag=True, help="print the new version as JSON")
@with_client
def models_register(
    name: str, model_id: int, description: str | None, as_json: bool, client: Client
) -> None:
    """Register MODEL_ID as the next version of NAME (creating NAME at version 1)."""
    body: dict[str, Any] = {"model_id": model_id}
    if description is not None:
        body["description"] = description
    version = client.request("POST", f"{registered_path(name)}/versions", body)
    if as_json:
        click.echo(json.dumps(version))
        return
    click.echo(f"model {model_id} is version {version['version']} of {version['name']}")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@with_client
def models_alias(name: str, alias: str, version: int, client: Client) -> None:
    """Point ALIAS of NAME at VERSION (creating the alias or moving it); predictions
    through NAME@ALIAS use that version from the next request on."""
    path = f"{registered_path(name)}/aliases/{urllib.parse.quote(alias, safe='')}"
    client.request("PUT", path, {"version": version})
    click.echo(f"{name}@{alias} -> version {version}")


@models.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the registered model as JSON")
@with_client
def models_versions(name: str, as_json: bool, client: Client) -> None:
    """The versions of NAME, newest first, with their models and aliases."""
    from rich.table import Table

    registered = client.request("GET", registered_path(name))
    if as_json:
        click.echo(json.dumps(registered))
        return
    table = Table(title=registered["name"], show_edge=False, pad_edge=False)
    for heading in ("version", "model", "aliases", "created", "description"):
        table.add_column(heading, no_wrap=heading != "description")
    for version in registered["versions"]:
        table.add_row(
            str(version["version"]),
            str(version["model_id"]),
            ", ".join(version["aliases"]) or "-",
            when(version["created_at"]),
            version["description"] or "",
        )
    console().print(table)
