"""Client commands of `backprop`: talk to a running service over HTTP.

The URL comes from --url or BACKPROP_URL, the key from --api-key or
BACKPROP_API_KEY. Exit status 0 means the command (or the followed job)
succeeded; a failed or cancelled job exits 1 with its reason on stderr.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .client import TABLE_TYPES, Client, ClientError
from .errors import Failure

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Where `backprop up` listens unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:8000"


def with_client(command: Callable[..., None]) -> Callable[..., None]:
    """Give the command a ``client`` built from --url and --api-key."""

    @click.option(
        "--url",
        envvar="BACKPROP_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="or BACKPROP_URL",
    )
    @click.option("--api-key", envvar="BACKPROP_API_KEY", help="or BACKPROP_API_KEY")
    @functools.wraps(command)
    def run(*args: Any, url: str, api_key: str | None, **kwargs: Any) -> None:
        try:
            client = Client(url, api_key)
        except ValueError as error:
            raise Failure(f"--url or BACKPROP_URL: {error}, e.g. {DEFAULT_URL}") from None
        command(*args, client=client, **kwargs)

    return run


def register(main: click.Group) -> None:
    main.add_command(datasets)
    main.add_command(train)
    main.add_command(jobs)
    main.add_command(predict)
    # Imported here: both build on this module (with_client).
    from .models import models
    from .sweeps import sweep, sweeps

    main.add_command(models)
    main.add_command(sweep)
    main.add_command(sweeps)


@click.group()
def datasets() -> None:
    """Datasets on the service."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--target",
    "targets",
    required=True,
    multiple=True,
    help="target column (repeatable, or a,b): several make a multilabel or multi-output set",
)
@click.option("--name", default=None, help="defaults to the file's name")
@click.option(
    "--task",
    type=click.Choice(["auto", "classification", "regression", "multilabel"]),
    default="auto",
    show_default=True,
    help="auto: the service tells from the target's values",
)
@click.option("--categorical", multiple=True, help="columns of numbers to read as categories")
@click.option("--ignore", multiple=True, help="columns to leave out (ids, free text)")
@click.option("--delimiter", default=None, help="a text file's field separator (default ,)")
@click.option("--decimal", default=None, help="a text file's decimal mark (default .)")
@click.option("--charset", default=None, help="a text file's encoding, e.g. windows-1252")
@click.option("--json", "as_json", is_flag=True, help="print the stored dataset as JSON")
@with_client
def datasets_upload(
    path: Path,
    targets: tuple[str, ...],
    name: str | None,
    task: str,
    categorical: tuple[str, ...],
    ignore: tuple[str, ...],
    delimiter: str | None,
    decimal: str | None,
    charset: str | None,
    as_json: bool,
    client: Client,
) -> None:
    """Upload a table: CSV, tab-separated (.tsv) or Parquet (.parquet), by the file's
    extension. Prints the profile of its columns, or with --json the stored dataset."""
    if path.suffix.lower() in (".parquet", ".pq") and (charset or delimiter or decimal):
        raise Failure("--charset, --delimiter and --decimal are for text files, not Parquet")
    dataset = client.upload_file(
        path,
        name or path.stem,
        list(targets),
        task=None if task == "auto" else task,
        categorical=list(categorical),
        ignore=list(ignore),
        delimiter=delimiter,
        decimal=decimal,
        charset=charset,
    )
    _print_dataset(dataset, as_json)


@datasets.command("show")
@click.argument("dataset_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print the dataset as JSON")
@with_client
def datasets_show(dataset_id: int, as_json: bool, client: Client) -> None:
    """A dataset's profile: each column's type, role, missing and distinct counts, and
    its statistics or most frequent categories."""
    _print_dataset(client.dataset(dataset_id), as_json)


@datasets.command("list")
@with_client
def datasets_list(client: Client) -> None:
    """Newest datasets first, one line each."""
    for dataset in client.datasets():
        task = dataset.get("task") or "-"
        shape = f"{dataset['n_samples']:>8} rows {dataset['n_features']:>4} features"
        click.echo(f"{dataset['id']:>6}  {task:<14} {shape}  {dataset['name']}")


def _print_dataset(dataset: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(dataset))
        return
    print_dataset(dataset)


def read_spec(path: Path) -> dict[str, Any]:
    """A spec file's fields, or a Failure saying what is wrong with it.

    Every field is sent, so that the API refuses (and names) one it does not know
    rather than this command dropping it unseen; the dataset comes from --dataset.
    """
    try:
        spec = json.loads(path.read_text())
    except ValueError as error:
        raise Failure(f"{path} is not valid JSON: {error}") from None
    if not isinstance(spec, dict) or not {"network", "training"} <= spec.keys():
        raise Failure(f'{path} must hold an object with "network" and "training"')
    named = sorted({"dataset", "dataset_id"} & spec.keys())
    if named:
        raise Failure(f"{path}: give the dataset with --dataset, not as {', '.join(named)}")
    return spec


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_id", type=int, required=True)
@click.option("--follow", is_flag=True, help="show progress until the job ends")
@click.option("--json", "as_json", is_flag=True, help="one JSON line per epoch, then the job")
@with_client
def train(spec: Path, dataset_id: int, follow: bool, as_json: bool, client: Client) -> None:
    """Start a job from SPEC.json ({"network": ..., "training": ...}) on a stored dataset.

    Prints the job as JSON. With --follow, a progress bar on stderr until the job
    ends, then the finished job (with its model_id) as JSON on stdout.
    """
    job = client.submit(**read_spec(spec), dataset_id=dataset_id)
    if not follow:
        click.echo(json.dumps(job))
        return
    try:
        final = _follow_json(client, job) if as_json else _follow_bar(client, job)
    except KeyboardInterrupt:
        # Ctrl-C stops the watching, not the training: say so, and how to stop that too.
        raise Failure(
            f"stopped following job {job['id']}, which goes on; "
            f"`backprop jobs cancel {job['id']}` stops it"
        ) from None
    if not as_json:
        click.echo(json.dumps(final))
    if final["status"] != "succeeded":
        reason = final.get("error") or final.get("stop_reason")
        raise Failure(f"job {final['id']} {final['status']}: {reason}")


def _follow_json(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Print one JSON line per epoch, then the final job; return the final job."""
    final = job
    for event in client.follow(job["id"]):
        if "epoch" in event:
            click.echo(json.dumps({"epoch": event["epoch"]}))
        else:
            final = event["job"]
    click.echo(json.dumps({"job": final}))
    return final


def _follow_bar(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Draw progress on stderr, so that stdout carries only the result; return the final job."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    started = time.monotonic()
    final = job
    columns = [
        TextColumn("job {task.fields[job]}"),
        BarColumn(),
        TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val_loss {task.fields[val_loss]}"),
        TextColumn("{task.fields[rate]} epochs/s"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(
            "train", total=job["epochs_total"], job=job["id"], loss="-", val_loss="-", rate="-"
        )
        for event in client.follow(job["id"]):
            if "epoch" in event:
                epoch = event["epoch"]
                rate = epoch["epoch"] / max(time.monotonic() - started, 1e-9)
                val = epoch["val_loss"]
                progress.update(
                    task,
                    completed=epoch["epoch"],
                    loss=f"{epoch['loss']:.6g}",
                    val_loss="-" if val is None else f"{val:.6g}",
                    rate=f"{rate:.0f}",
                )
            else:
                final = event["job"]
    model = f": model {final['model_id']}" if final.get("model_id") is not None else ""
    click.echo(f"job {final['id']} {final['status']} ({final.get('stop_reason')}){model}", err=True)
    return final


@click.group()
def jobs() -> None:
    """Jobs on the service."""


@jobs.command("list")
@click.option("--status", default=None)
@with_client
def jobs_list(status: str | None, client: Client) -> None:
    """Newest jobs first, one line each."""
    for job in client.jobs(status=status):
        loss = "-" if job["loss"] is None else f"{job['loss']:.6g}"
        progress = f"{job['epochs_completed']:>8}/{job['epochs_total']:<8}"
        click.echo(f"{job['id']:>6}  {job['status']:<10} {progress} loss {loss}")


@jobs.command("show")
@click.argument("job_id", type=int)
@with_client
def jobs_show(job_id: int, client: Client) -> None:
    """A job as JSON."""
    click.echo(json.dumps(client.job(job_id), indent=2))


@jobs.command("cancel")
@click.argument("job_id", type=int)
@with_client
def jobs_cancel(job_id: int, client: Client) -> None:
    """Cancel a job (a running one stops at an epoch boundary within moments)."""
    click.echo(json.dumps(client.cancel(job_id)))


@jobs.command("delete")
@click.argument("job_id", type=int)
@with_client
def jobs_delete(job_id: int, client: Client) -> None:
    """Delete a finished job with its epochs and model (cancel a queued or running one
    first; a job whose model is registered stays until its versions are deleted)."""
    client.request("DELETE", f"/jobs/{job_id}")
    click.echo(f"deleted job {job_id}")


@click.command()
@click.argument("model_id", type=int)
@click.argument("source", type=click.File("rb"))
@click.option(
    "--header",
    default=None,
    help="present or absent: whether the first row names the columns, when the service "
    "cannot tell (by default a first row of names is a header, one of numbers is data)",
)
@with_client
def predict(model_id: int, source: io.BufferedReader, header: str | None, client: Client) -> None:
    """Predict the rows of a CSV, .tsv or .parquet file (- reads CSV from stdin); prints
    outputs and labels as CSV.

    The file goes to the service as it is: a header row's columns are matched to the
    model's features by name, in any order; rows without a header are taken in the
    model's feature order. Every row gets an answer, or the command fails.
    """
    try:
        kind = TABLE_TYPES.get(Path(source.name).suffix.lower(), "text/csv")
        answer = client.predict_csv(model_id, source.read(), header=header, content_type=kind)
    except ClientError as error:
        if error.field != "header":
            raise
        raise Failure(f"{error}; tell it with --header present or --header absent") from None
    writer = csv.writer(sys.stdout)
    width = len(answer["outputs"][0]) if answer["outputs"] else 0
    labels = answer.get("labels")
    writer.writerow([f"output_{i}" for i in range(width)] + (["label"] if labels else []))
    for index, outputs in enumerate(answer["outputs"]):
        writer.writerow(outputs + ([labels[index]] if labels else []))


# --- a dataset's profile as tables for a terminal ---------------------------------

# Eighths of a character cell, for a histogram in one line of text.
BARS = "▁▂▃▄▅▆▇█"
# A pipe or a file has no width to ask; this one fits a profile without folding names.
PIPE_WIDTH = 160


def sparkline(counts: list[int]) -> str:
    """One character per bin, as tall as its count; an empty bin is a space."""
    top = max(counts, default=0)
    if top == 0:
        return ""
    return "".join(
        BARS[max(1, math.ceil(8 * count / top)) - 1] if count else " " for count in counts
    )


def number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def profile_table(profile: dict[str, Any]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("column", no_wrap=True, style="bold")
    table.add_column("type", no_wrap=True)
    table.add_column("role", no_wrap=True)
    for heading in ("missing", "distinct", "min", "max", "mean", "std"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("distribution / top categories")
    for column in profile["columns"]:
        cells = [Text(column["name"]), Text(column["type"]), Text(column["role"])]
        if column["type"] == "ignored":
            cells += [Text("")] * 6 + [Text(column.get("reason") or "", style="dim")]
        elif column["type"] == "number":
            histogram = column.get("histogram")
            cells += [Text(str(column["missing"])), Text(str(column["distinct"]))]
            cells += [Text(number(column.get(key))) for key in ("min", "max", "mean", "std")]
            cells.append(Text(sparkline(histogram["counts"]) if histogram else ""))
        else:
            top = "  ".join(f"{entry['value']} {entry['count']}" for entry in column["top"])
            cells += [Text(str(column["missing"])), Text(str(column["distinct"]))]
            cells += [Text("")] * 4 + [Text(top)]
        table.add_row(*cells, style="dim" if column["role"] == "ignored" else None)
    return table


def balance_table(balance: list[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    total = sum(entry["count"] for entry in balance) or 1
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("class", no_wrap=True, style="bold")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for entry in balance:
        share = f"{100 * entry['count'] / total:.1f}%"
        table.add_row(Text(str(entry["class"])), str(entry["count"]), share)
    return table


def print_dataset(dataset: dict[str, Any], console: Console | None = None) -> None:
    """The dataset's id, name and shape, its columns' profile and its class balance."""
    # rich is loaded here, not with the module: every `backprop` command imports this one.
    from rich.console import Console
    from rich.text import Text

    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=PIPE_WIDTH)
    profile = dataset.get("profile")
    task = dataset.get("task") or "no task"
    console.print(
        Text(
            f"dataset {dataset['id']}: {dataset['name']}, {dataset['n_samples']} rows, "
            f"{dataset['n_features']} features, {task}",
            style="bold",
        )
    )
    if profile is None:
        # Stored from JSON arrays: no columns to describe beyond their names.
        names = ", ".join(dataset.get("feature_names") or []) or "unnamed"
        console.print(Text(f"features: {names}"))
        return
    console.print(profile_table(profile))
    if profile.get("class_balance"):
        console.print()
        console.print(balance_table(profile["class_balance"]))
