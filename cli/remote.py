"""Client commands of `backprop`: talk to a running service over HTTP.

The URL comes from --url or BACKPROP_URL, the key from --api-key or
BACKPROP_API_KEY. Exit status 0 means the command (or the followed job)
succeeded; a failed or cancelled job exits 1 with its reason on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .client import Client, ClientError

connection = [
    click.option(
        "--url", envvar="BACKPROP_URL", default="http://127.0.0.1:8000", show_default=True
    ),
    click.option("--api-key", envvar="BACKPROP_API_KEY", help="or BACKPROP_API_KEY"),
]


def with_client(command: Any) -> Any:
    for option in reversed(connection):
        command = option(command)
    return command


def fail(message: str) -> None:
    click.echo(f"backprop: {message}", err=True)
    sys.exit(1)


def register(main: click.Group) -> None:
    main.add_command(datasets)
    main.add_command(train)
    main.add_command(jobs)
    main.add_command(predict)


@click.group()
def datasets() -> None:
    """Datasets on the service."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--target", "targets", required=True, multiple=True, help="target column (repeatable)"
)
@click.option("--name", default=None, help="defaults to the file's name")
@with_client
def datasets_upload(
    path: Path, targets: tuple[str, ...], name: str | None, url: str, api_key: str | None
) -> None:
    """Upload a CSV file; prints the stored dataset as JSON."""
    try:
        dataset = Client(url, api_key).upload_csv(path, name or path.stem, list(targets))
    except ClientError as error:
        fail(str(error))
    click.echo(json.dumps(dataset))


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_id", type=int, required=True)
@click.option("--follow", is_flag=True, help="show progress until the job ends")
@click.option("--json", "as_json", is_flag=True, help="one JSON line per epoch, then the job")
@with_client
def train(
    spec: Path, dataset_id: int, follow: bool, as_json: bool, url: str, api_key: str | None
) -> None:
    """Start a job from SPEC.json ({"network": ..., "training": ...}) on a stored dataset."""
    client = Client(url, api_key)
    body = json.loads(spec.read_text())
    try:
        job = client.submit(body["network"], body["training"], dataset_id=dataset_id)
    except ClientError as error:
        fail(str(error))
    except KeyError as missing:
        fail(f"{spec} needs a {missing} field")
    if not follow:
        click.echo(json.dumps(job))
        return
    final = _follow(client, job, as_json)
    if final["status"] != "succeeded":
        fail(
            f"job {final['id']} {final['status']}: {final.get('error') or final.get('stop_reason')}"
        )


def _follow(client: Client, job: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Print progress until the job ends; return its final state."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    total = job["epochs_total"]
    started = time.monotonic()
    final = job
    if as_json:
        for event in client.follow(job["id"]):
            if "epoch" in event:
                click.echo(json.dumps({"epoch": event["epoch"]}))
            else:
                final = event["job"]
        click.echo(json.dumps({"job": final}))
        return final
    columns = [
        TextColumn("job {task.fields[job]}"),
        BarColumn(),
        TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val_loss {task.fields[val_loss]}"),
        TextColumn("{task.fields[rate]} epochs/s"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=None, transient=False) as progress:
        task = progress.add_task(
            "train", total=total, job=job["id"], loss="-", val_loss="-", rate="-"
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
    click.echo(f"job {final['id']} {final['status']} ({final.get('stop_reason')})")
    return final


@click.group()
def jobs() -> None:
    """Jobs on the service."""


@jobs.command("list")
@click.option("--status", default=None)
@with_client
def jobs_list(status: str | None, url: str, api_key: str | None) -> None:
    """Newest jobs first, one line each."""
    try:
        for job in Client(url, api_key).jobs(status=status):
            loss = "-" if job["loss"] is None else f"{job['loss']:.6g}"
            progress = f"{job['epochs_completed']:>8}/{job['epochs_total']:<8}"
            click.echo(f"{job['id']:>6}  {job['status']:<10} {progress} loss {loss}")
    except ClientError as error:
        fail(str(error))


@jobs.command("show")
@click.argument("job_id", type=int)
@with_client
def jobs_show(job_id: int, url: str, api_key: str | None) -> None:
    """A job as JSON."""
    try:
        click.echo(json.dumps(Client(url, api_key).job(job_id), indent=2))
    except ClientError as error:
        fail(str(error))


@jobs.command("cancel")
@click.argument("job_id", type=int)
@with_client
def jobs_cancel(job_id: int, url: str, api_key: str | None) -> None:
    """Cancel a job (a running one stops at its next epoch boundary)."""
    try:
        click.echo(json.dumps(Client(url, api_key).cancel(job_id)))
    except ClientError as error:
        fail(str(error))


@click.command()
@click.argument("model_id", type=int)
@click.argument("source", type=click.File("r"))
@with_client
def predict(model_id: int, source: io.TextIOBase, url: str, api_key: str | None) -> None:
    """Predict the rows of a CSV file of features (with a header; - reads stdin)."""
    rows = list(csv.reader(source))
    if not rows:
        fail("the CSV has no header row")
    try:
        inputs = [[float(value) for value in row] for row in rows[1:] if row]
    except ValueError as error:
        fail(f"the CSV holds a value that is not a number: {error}")
    try:
        answer = Client(url, api_key).predict(model_id, inputs)
    except ClientError as error:
        fail(str(error))
    writer = csv.writer(sys.stdout)
    width = len(answer["outputs"][0]) if answer["outputs"] else 0
    writer.writerow(
        [f"output_{i}" for i in range(width)] + (["label"] if "labels" in answer else [])
    )
    for index, outputs in enumerate(answer["outputs"]):
        writer.writerow(outputs + ([answer["labels"][index]] if "labels" in answer else []))
