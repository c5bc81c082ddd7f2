"""`backprop sweep SPEC.json --dataset ID`: start a hyperparameter sweep, and follow it
with a live table of its trials; `backprop sweeps list|show|cancel|delete`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .client import Client
from .errors import Failure
from .remote import with_client

if TYPE_CHECKING:
    from rich.table import Table

# What a sweep file may hold besides the base spec; the rest is the service's to judge.
FIELDS = (
    "network",
    "training",
    "search_space",
    "trials",
    "parallel",
    "sampler",
    "pruner",
    "metric",
    "direction",
)
FINISHED = ("succeeded", "failed", "cancelled")


def read_sweep(path: Path) -> dict[str, Any]:
    """The sweep request in a spec file, or a Failure saying what is wrong with it."""
    try:
        spec = json.loads(path.read_text())
    except ValueError as error:
        raise Failure(f"{path} is not valid JSON: {error}") from None
    if not isinstance(spec, dict) or not {"training", "search_space", "trials"} <= spec.keys():
        raise Failure(f'{path} must hold an object with "training", "search_space" and "trials"')
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise Failure(f"{path}: unknown field {unknown[0]!r}; a sweep has {', '.join(FIELDS)}")
    return spec


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def sweep_table(sweep: dict[str, Any]) -> Table:
    """The sweep's trials as a table, its best trial marked with a star."""
    from rich import box
    from rich.table import Table

    best = (sweep.get("best") or {}).get("job_id")
    done = sum(trial["status"] in FINISHED for trial in sweep["trials"])
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title=f"sweep {sweep['id']}: {sweep['status']}, {done}/{sweep['trials_total']} trials "
        f"done, {sweep['metric']} ({sweep['direction']})",
        title_justify="left",
    )
    paths = list(sweep["search_space"])
    # Each path by its last field (the whole path when two end alike): a narrow table.
    last = [path.rsplit(".", 1)[-1] for path in paths]
    names = [
        name if last.count(name) == 1 else path for name, path in zip(last, paths, strict=True)
    ]
    for column in ("#", "job", "state", "epochs", sweep["metric"], *names):
        table.add_column(
            column,
            justify="left" if column == "state" else "right",
            no_wrap=True,
            min_width=4 if column == "#" else min(len(column), 24),
        )
    for trial in sweep["trials"]:
        mark = "*" if trial["job_id"] == best else ""
        table.add_row(
            f"{trial['number']}{mark}",
            str(trial["job_id"]),
            trial["state"] if trial["status"] != "queued" else "queued",
            str(trial["epochs_completed"]),
            _number(trial["value"]),
            *(_number(trial["params"].get(path)) for path in paths),
        )
    return table


def follow_table(client: Client, sweep: dict[str, Any], poll: float = 0.5) -> dict[str, Any]:
    """Redraw the trials' table on stderr until the sweep ends; return the final sweep."""
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(sweep_table(sweep), console=console, auto_refresh=False) as live:
        while sweep["status"] not in FINISHED:
            time.sleep(poll)
            sweep = client.request("GET", f"/sweeps/{sweep['id']}")
            live.update(sweep_table(sweep), refresh=True)
    if not console.is_terminal:
        # Live ends its last row with a newline on a terminal only: what stderr says
        # next (a failed sweep's line) would run into that row.
        console.line()
    return sweep


def follow_json(client: Client, sweep: dict[str, Any], poll: float = 0.5) -> dict[str, Any]:
    """One JSON line per trial whose state changed, then ``{"sweep": ...}``."""
    seen: dict[int, tuple[str, str]] = {}
    while True:
        for trial in sweep["trials"]:
            key = (trial["status"], trial["state"])
            if seen.get(trial["number"]) != key:
                seen[trial["number"]] = key
                click.echo(json.dumps({"trial": trial}))
        if sweep["status"] in FINISHED:
            break
        time.sleep(poll)
        sweep = client.request("GET", f"/sweeps/{sweep['id']}")
    click.echo(json.dumps({"sweep": sweep}))
    return sweep


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_id", type=int, required=True)
@click.option("--follow", is_flag=True, help="a live table of the trials until the sweep ends")
@click.option("--json", "as_json", is_flag=True, help="with --follow: JSON lines, not a table")
@with_client
def sweep(spec: Path, dataset_id: int, follow: bool, as_json: bool, client: Client) -> None:
    """Start a hyperparameter sweep from SPEC.json on a stored dataset.

    SPEC.json holds network, training, search_space, trials, and optionally
    parallel, sampler, pruner, metric and direction. Prints the sweep as JSON.
    With --follow, a live table of the trials on stderr until the sweep ends,
    then the finished sweep as JSON on stdout; exit status 0 when it succeeded.
    """
    body = {**read_sweep(spec), "dataset_id": dataset_id}
    started = client.request("POST", "/sweeps", body)
    if not follow:
        click.echo(json.dumps(started))
        return
    try:
        final = follow_json(client, started) if as_json else follow_table(client, started)
    except KeyboardInterrupt:
        raise Failure(
            f"stopped following sweep {started['id']}, which goes on; "
            f"`POST /sweeps/{started['id']}/cancel` stops it"
        ) from None
    if not as_json:
        click.echo(json.dumps(final))
    if final["status"] != "succeeded":
        raise Failure(ended_message(final))


def ended_message(sweep: dict[str, Any]) -> str:
    """``sweep 17 failed: no trial completed``; ``sweep 52 cancelled`` (no reason)."""
    reason = sweep.get("error")
    return f"sweep {sweep['id']} {sweep['status']}" + (f": {reason}" if reason else "")


@click.group()
def sweeps() -> None:
    """Hyperparameter sweeps on the service (`backprop sweep` starts one)."""


@sweeps.command("list")
@with_client
def sweeps_list(client: Client) -> None:
    """Newest sweeps first, one line each."""
    for listed in client.request("GET", "/sweeps?limit=100")["sweeps"]:
        best = listed.get("best") or {}
        value = "-" if best.get("value") is None else f"{best['value']:.6g}"
        click.echo(
            f"{listed['id']:>6}  {listed['status']:<10} {listed['trials_total']:>5} trials  "
            f"{listed['metric']} best {value}"
        )


@sweeps.command("show")
@click.argument("sweep_id", type=int)
@with_client
def sweeps_show(sweep_id: int, client: Client) -> None:
    """A sweep as JSON, with its trials."""
    click.echo(json.dumps(client.request("GET", f"/sweeps/{sweep_id}"), indent=2))


@sweeps.command("cancel")
@click.argument("sweep_id", type=int)
@with_client
def sweeps_cancel(sweep_id: int, client: Client) -> None:
    """Cancel a sweep: no more trials start; queued and running ones are cancelled."""
    click.echo(json.dumps(client.request("POST", f"/sweeps/{sweep_id}/cancel")))


@sweeps.command("delete")
@click.argument("sweep_id", type=int)
@with_client
def sweeps_delete(sweep_id: int, client: Client) -> None:
    """Delete a finished sweep with its trial jobs and their models (cancel a queued or
    running one first; refused while a trial's model is a registered version)."""
    client.request("DELETE", f"/sweeps/{sweep_id}")
    click.echo(f"deleted sweep {sweep_id}")
