"""The `backprop` client commands and the Python client against a live service:
a real API process and a real worker on this run's PostgreSQL and Redis."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.client import Client, ClientError
from tests.service.cli_process import BACKPROP, one_line_error
from tests.service.http import free_port
from tests.service.processes import ROOT, wait_for

CASES = ROOT / "tests" / "data" / "cases"
SPEC = {
    "network": {
        "input_dim": 4,
        "layers": [{"units": 8, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
    },
    "training": {
        "epochs": 60,
        "optimizer": "adam",
        "normalize": "standardize",
        "validation_split": 0.2,
    },
}


@pytest.fixture(scope="module")
def service(live_api: tuple[str, str]) -> dict[str, str]:
    """The environment a user's shell would have for the live service."""
    base, key = live_api
    return {"BACKPROP_URL": base, "BACKPROP_API_KEY": key}


def backprop(
    user: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    return subprocess.run(
        [BACKPROP, *args],
        env={**clean, **user},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def iris_id(service: dict[str, str]) -> int:
    iris = str(ROOT / "examples" / "iris.csv")
    done = backprop(service, "datasets", "upload", iris, "--target", "species", "--json")
    assert done.returncode == 0, done.stderr
    dataset = json.loads(done.stdout)
    assert dataset["classes"] == ["setosa", "versicolor", "virginica"]
    return int(dataset["id"])


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """palmerpenguins' 344 rows, missing cells and all, as a pandas DataFrame."""
    from palmerpenguins import load_penguins

    return load_penguins()


def profile_rows(table: str) -> dict[str, list[str]]:
    """The cells of each column's row of the printed profile, by column name."""
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) >= 3 and cells[0] and cells[0] != "column":
            rows[cells[0]] = cells[1:]
    return rows


def test_upload_prints_the_profile_as_a_table(
    service: dict[str, str], penguins: Any, tmp_path: Path
) -> None:
    path = tmp_path / "penguins.csv"
    penguins.to_csv(path, index=False)
    done = backprop(service, "datasets", "upload", str(path), "--target", "species")
    assert done.returncode == 0, done.stderr
    first, *table = done.stdout.splitlines()
    dataset_id = int(first.split(":")[0].removeprefix("dataset "))
    assert first == f"dataset {dataset_id}: penguins, 344 rows, 7 features, classification"
    rows = profile_rows("\n".join(table))
    assert list(rows)[: len(penguins.columns)] == list(penguins.columns)
    types = {name: cells[:2] for name, cells in rows.items() if name in penguins.columns}
    assert types == {
        "species": ["category", "target"],
        "island": ["category", "feature"],
        "bill_length_mm": ["number", "feature"],
        "bill_depth_mm": ["number", "feature"],
        "flipper_length_mm": ["number", "feature"],
        "body_mass_g": ["number", "feature"],
        "sex": ["category", "feature"],
        "year": ["number", "feature"],
    }
    # missing, distinct, min, max, mean, std, then the histogram or the top categories
    bill = rows["bill_length_mm"][2:]
    column = penguins["bill_length_mm"]
    assert bill[:4] == ["2", str(column.nunique()), f"{column.min():.4g}", f"{column.max():.4g}"]
    assert float(bill[4]) == pytest.approx(column.mean(), rel=1e-3)
    assert float(bill[5]) == pytest.approx(column.std(ddof=0), rel=1e-3)
    assert len(bill[6]) == 10 and "█" in bill[6]
    assert rows["island"][2:4] == ["0", "3"]
    assert rows["island"][-1] == "Biscoe 168  Dream 124  Torgersen 52"
    assert rows["sex"][2] == str(penguins["sex"].isna().sum())
    # The class balance follows, one row per species.
    assert [rows[name][0] for name in ("Adelie", "Chinstrap", "Gentoo")] == ["152", "68", "124"]
    shown = backprop(service, "datasets", "show", str(dataset_id))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == done.stdout
    raw = backprop(service, "datasets", "show", str(dataset_id), "--json")
    assert json.loads(raw.stdout)["profile"]["n_rows"] == 344


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        (".parquet", []),
        (".tsv", []),
        (".csv", ["--delimiter", ";", "--decimal", ",", "--charset", "windows-1252"]),
    ],
)
def test_other_files_give_the_same_profile(
    service: dict[str, str], penguins: Any, tmp_path: Path, suffix: str, options: list[str]
) -> None:
    """Parquet by its extension, tab-separated by its, and a European spreadsheet's CSV
    (semicolons, decimal commas, Windows' encoding) by the options: the same table."""
    reference = tmp_path / "reference.csv"
    penguins.to_csv(reference, index=False)
    path = tmp_path / f"penguins{suffix}"
    if suffix == ".parquet":
        penguins.to_parquet(path, index=False)
    elif suffix == ".tsv":
        penguins.to_csv(path, index=False, sep="\t")
    else:
        # A name no UTF-8 reader would take: 'Torgersen' spelt with a Windows-1252 'ø'.
        european = penguins.replace({"island": {"Torgersen": "Torgersøn"}})
        european.to_csv(path, index=False, sep=";", decimal=",", encoding="windows-1252")
    uploads = [
        backprop(service, "datasets", "upload", str(file), "--target", "species", "--json", *more)
        for file, more in ((reference, []), (path, options))
    ]
    assert all(done.returncode == 0 for done in uploads), [done.stderr for done in uploads]
    expected, profile = (json.loads(done.stdout)["profile"] for done in uploads)
    if suffix == ".csv":
        island = next(c for c in profile["columns"] if c["name"] == "island")
        assert {"value": "Torgersøn", "count": 52} in island["top"]
        island["top"] = [
            {**entry, "value": "Torgersen"} if entry["value"] == "Torgersøn" else entry
            for entry in island["top"]
        ]
    assert profile == expected


def test_a_refused_upload_is_one_line(
    service: dict[str, str], penguins: Any, tmp_path: Path
) -> None:
    path = tmp_path / "penguins.csv"
    penguins.to_csv(path, index=False)
    done = backprop(service, "datasets", "upload", str(path), "--target", "beak_colour")
    message = one_line_error(done)
    assert message.startswith("backprop: 422 validation_error: ") and "beak_colour" in message
    assert done.stdout == ""


def test_train_follow_shows_progress_and_ends_with_the_model(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    """Progress goes to stderr; stdout is the finished job, whose model answers."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    done = backprop(service, "train", str(spec), "--dataset", str(iris_id), "--follow")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["epochs_completed"] == 60
    assert "epoch 60/60" in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"job {job['id']} succeeded (max_epochs): model {job['model_id']}"
    )
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    assert client.model(job["model_id"])["job_id"] == job["id"]


def test_train_sends_every_field_of_its_spec(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    """A field the API does not know is its 422 naming the field, not dropped unseen."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**SPEC, "normalize": "standard"}))
    refused = backprop(service, "train", str(spec), "--dataset", str(iris_id))
    assert refused.returncode == 1 and "normalize" in refused.stderr, refused.stderr
    spec.write_text(json.dumps({**SPEC, "dataset_id": iris_id}))
    doubled = backprop(service, "train", str(spec), "--dataset", str(iris_id))
    assert doubled.returncode != 0 and "--dataset" in doubled.stderr, doubled.stderr


def test_train_follow_json_lines(service: dict[str, str], iris_id: int, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    done = backprop(service, "train", str(spec), "--dataset", str(iris_id), "--follow", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["epoch"]["epoch"] for line in lines[:-1]] == list(range(1, 61))
    assert lines[-1]["job"]["status"] == "succeeded"


def following_a_long_job(
    service: dict[str, str], iris_id: int, folder: Path, *flags: str
) -> tuple[subprocess.Popen[str], dict[str, Any], Client]:
    """`backprop train --follow FLAGS` on a job of a million epochs, once it has run a few:
    (the follower, the job, a client)."""
    spec = folder / "long.json"
    spec.write_text(json.dumps({**SPEC, "training": {**SPEC["training"], "epochs": 1_000_000}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    # The job this follower submits, not one an earlier test cancelled that is still
    # running until its worker reads the cancel.
    before = max((j["id"] for j in client.jobs()), default=0)
    follow = subprocess.Popen(
        [BACKPROP, "train", str(spec), "--dataset", str(iris_id), "--follow", *flags],
        env={**clean, **service},
        # Ctrl-C as in a terminal, even when this run was started where SIGINT is ignored
        # (a background job of a script), which a child would otherwise inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = wait_for(
        lambda: next((j for j in client.jobs(status="running") if j["id"] > before), None), 30
    )
    wait_for(lambda: client.job(job["id"])["epochs_completed"] > 5, 30)
    return follow, job, client


def test_a_cancelled_job_exits_non_zero_with_its_reason(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    follow, job, client = following_a_long_job(service, iris_id, tmp_path, "--json")
    client.cancel(job["id"])
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 1
    assert err.splitlines()[-1].startswith(f"backprop: job {job['id']} cancelled")
    assert json.loads(out.splitlines()[-1])["job"]["status"] == "cancelled"


def test_ctrl_c_stops_following_not_training(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    follow, job, client = following_a_long_job(service, iris_id, tmp_path)
    follow.send_signal(signal.SIGINT)
    out, err = follow.communicate(timeout=60)
    try:
        assert follow.returncode == 1 and out == ""
        assert err.splitlines()[-1] == (
            f"backprop: stopped following job {job['id']}, which goes on; "
            f"`backprop jobs cancel {job['id']}` stops it"
        )
        assert client.job(job["id"])["status"] == "running"
    finally:
        client.cancel(job["id"])
    wait_for(lambda: client.job(job["id"])["status"] == "cancelled", 30)


@pytest.fixture(scope="module")
def iris_model(service: dict[str, str], iris_id: int) -> int:
    """A model trained with the README's spec, its id taken from `train --follow`."""
    spec = ROOT / "examples" / "iris-spec.json"
    done = backprop(service, "train", str(spec), "--dataset", str(iris_id), "--follow")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["model_id"])


def predicted(done: subprocess.CompletedProcess[str]) -> tuple[list[list[float]], list[str]]:
    """(outputs, labels) of `backprop predict`'s CSV answer."""
    assert done.returncode == 0, done.stderr
    header, *rows = list(csv.reader(io.StringIO(done.stdout)))
    assert header == ["output_0", "output_1", "output_2", "label"]
    return [[float(v) for v in row[:-1]] for row in rows], [row[-1] for row in rows]


# Rows of tests/data/cases/c04_*.csv in the model's feature order, and their species.
C04_ROWS = [[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2]]
C04_LABELS = ["versicolor", "setosa"]


def test_predict_matches_columns_by_name(service: dict[str, str], iris_model: int) -> None:
    """Columns in another order than the training file's are matched by their names."""
    path = CASES / "c04_reordered.csv"
    assert path.read_text().splitlines()[0] != "sepal_length,sepal_width,petal_length,petal_width"
    outputs, labels = predicted(backprop(service, "predict", str(iris_model), str(path)))
    assert labels == C04_LABELS
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    by_position = client.predict(iris_model, C04_ROWS)
    assert outputs == by_position["outputs"]  # the CSV carries each float exactly
    from_stdin = backprop(service, "predict", str(iris_model), "-", stdin=path.read_text())
    assert from_stdin.stdout == backprop(service, "predict", str(iris_model), str(path)).stdout


def test_predict_the_readme_rows(service: dict[str, str], iris_model: int) -> None:
    path = ROOT / "examples" / "iris-predict.csv"
    _, labels = predicted(backprop(service, "predict", str(iris_model), str(path)))
    assert labels == ["setosa", "virginica"]


def test_a_headerless_file_keeps_every_row(service: dict[str, str], iris_model: int) -> None:
    """A first row of numbers is data, in the model's feature order, as the API has it."""
    path = CASES / "c04_headerless_cli.csv"
    outputs, labels = predicted(backprop(service, "predict", str(iris_model), str(path)))
    assert labels == C04_LABELS
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    assert outputs == client.predict(iris_model, C04_ROWS)["outputs"]


@pytest.mark.parametrize(
    ("rows", "options", "messages"),
    [
        # Told the first row is a header, the service reads 6.4 as a column name.
        (
            "6.4,3.2,4.5,1.5\n5.1,3.5,1.4,0.2\n",
            ["--header", "present"],
            ["unknown column", "(6.4)"],
        ),
        (
            "sepal_length,3.2,4.5,1.5\n6.4,3.2,4.5,1.5\n",
            [],
            ["--header present or --header absent"],
        ),
        (
            "sepal_length,sepal_width,petal_length,leaf_width\n6.4,3.2,4.5,1.5\n",
            [],
            ["400 feature_mismatch", "petal_width"],
        ),
    ],
)
def test_a_refused_csv_is_one_line_and_no_rows(
    service: dict[str, str],
    iris_model: int,
    tmp_path: Path,
    rows: str,
    options: list[str],
    messages: list[str],
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(rows)
    done = backprop(service, "predict", str(iris_model), *options, str(path))
    message = one_line_error(done)
    assert all(part in message for part in messages), message
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("arguments", "user", "message", "status"),
    [
        (["jobs", "list"], {"BACKPROP_URL": "http://127.0.0.1:{port}"}, "no service at", 1),
        (["jobs", "show", "1", "--url", "127.0.0.1:{port}"], {}, "needs http:// or https://", 1),
        (["train", "{malformed}", "--dataset", "1"], {}, "is not valid JSON: Expecting", 1),
        (["train", "{incomplete}", "--dataset", "1"], {}, 'with "network" and "training"', 1),
        (["train", "{missing}", "--dataset", "1"], {}, "does not exist", 2),
        (["predict", "1", "{missing}"], {}, "No such file or directory", 2),
        (["train", "{incomplete}"], {}, "Missing option '--dataset'", 2),
        (["--url", "http://127.0.0.1:{port}", "jobs", "list"], {}, "No such option '--url'", 2),
        (["jobs", "--bogus"], {}, "No such option '--bogus'. (see `backprop jobs --help`)", 2),
        (["nosuch"], {}, "No such command 'nosuch'", 2),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, arguments: list[str], user: dict[str, str], message: str, status: int
) -> None:
    """Nothing listens on the port; the files are broken or absent before any request."""
    (tmp_path / "malformed.json").write_text('{"network": {"input_dim": 4,}, "training": {}}')
    (tmp_path / "incomplete.json").write_text('{"network": {"input_dim": 4}}')
    names = {
        "port": str(free_port()),
        "malformed": str(tmp_path / "malformed.json"),
        "incomplete": str(tmp_path / "incomplete.json"),
        "missing": str(tmp_path / "missing.json"),
    }
    filled = [argument.format(**names) for argument in arguments]
    env = {key: value.format(**names) for key, value in user.items()}
    done = backprop({"BACKPROP_API_KEY": "bp_unused", **env}, *filled)
    assert message in one_line_error(done, status)
    assert done.stdout == ""


def test_client_errors_carry_the_api_error(service: dict[str, str]) -> None:
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    with pytest.raises(ClientError) as missing:
        client.job(2147483647)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ClientError) as bad:
        client.submit({"input_dim": 0, "layers": []}, {"epochs": 1}, dataset_id=1)
    assert bad.value.status == 422 and bad.value.field is not None
    wrong_key = backprop({**service, "BACKPROP_API_KEY": "bp_wrong"}, "jobs", "list")
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr
    listed = backprop(service, "jobs", "list")
    assert listed.returncode == 0


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[str]:
    """A plain file server, as a user may find on the port they name: its base URL."""
    (tmp_path / "jobs").write_text("<html>not an API</html>\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["jobs", "list"], "answered, but not with JSON"),
        (["jobs", "show", "7"], "404 http_error: File not found (not an API error)"),
    ],
)
def test_another_server_on_the_port_is_one_line(
    other_server: str, arguments: list[str], message: str
) -> None:
    done = backprop({"BACKPROP_URL": other_server, "BACKPROP_API_KEY": "bp_unused"}, *arguments)
    assert message in one_line_error(done)
    assert done.stdout == ""


def test_predict_a_parquet_file(service: dict[str, str], iris_model: int, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    table = pa.table({name: [row[i] for row in C04_ROWS] for i, name in enumerate(names)})
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    outputs, labels = predicted(backprop(service, "predict", str(iris_model), str(path)))
    assert labels == C04_LABELS
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    assert outputs == client.predict(iris_model, C04_ROWS)["outputs"]
