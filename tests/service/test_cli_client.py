"""The `backprop` client commands and the Python client against a live service:
a real API process and a real worker on this run's PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.client import Client, ClientError
from tests.service.processes import ROOT, wait_for

BACKPROP = str(Path(sys.executable).parent / "backprop")
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
    done = backprop(
        service, "datasets", "upload", str(ROOT / "examples" / "iris.csv"), "--target", "species"
    )
    assert done.returncode == 0, done.stderr
    dataset = json.loads(done.stdout)
    assert dataset["classes"] == ["setosa", "versicolor", "virginica"]
    return int(dataset["id"])


def test_train_follow_shows_progress_and_succeeds(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    done = backprop(service, "train", str(spec), "--dataset", str(iris_id), "--follow")
    assert done.returncode == 0, done.stderr
    assert "epoch 60/60" in done.stdout and "succeeded" in done.stdout


def test_train_follow_json_lines(service: dict[str, str], iris_id: int, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    done = backprop(service, "train", str(spec), "--dataset", str(iris_id), "--follow", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["epoch"]["epoch"] for line in lines[:-1]] == list(range(1, 61))
    assert lines[-1]["job"]["status"] == "succeeded"


def test_a_cancelled_job_exits_non_zero_with_its_reason(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps({**SPEC, "training": {**SPEC["training"], "epochs": 1_000_000}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    follow = subprocess.Popen(
        [BACKPROP, "train", str(spec), "--dataset", str(iris_id), "--follow", "--json"],
        env={**clean, **service},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    job = wait_for(lambda: next((j for j in client.jobs(status="running")), None), 30)
    wait_for(lambda: client.job(job["id"])["epochs_completed"] > 5, 30)
    client.cancel(job["id"])
    out, err = follow.communicate(timeout=60)
    assert follow.returncode != 0
    assert "cancelled" in err


def test_predict_a_csv_file_and_stdin(
    service: dict[str, str], iris_id: int, tmp_path: Path
) -> None:
    client = Client(service["BACKPROP_URL"], service["BACKPROP_API_KEY"])
    job = client.submit(SPEC["network"], SPEC["training"], dataset_id=iris_id)
    final = [e for e in client.follow(job["id"], poll=0.1) if "epoch" not in e][-1]["job"]
    assert final["status"] == "succeeded"
    rows = tmp_path / "flowers.csv"
    rows.write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.9,3.1,5.4,2.1\n"
    )
    from_file = backprop(service, "predict", str(final["model_id"]), str(rows))
    assert from_file.returncode == 0, from_file.stderr
    lines = from_file.stdout.splitlines()
    assert lines[0] == "output_0,output_1,output_2,label"
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["setosa", "virginica"]
    from_stdin = backprop(service, "predict", str(final["model_id"]), "-", stdin=rows.read_text())
    assert from_stdin.stdout == from_file.stdout


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
