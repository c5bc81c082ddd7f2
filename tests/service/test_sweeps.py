"""Hyperparameter sweeps end to end: trials as jobs on real worker processes, their
study in Optuna's storage on the service's database, pruning, cancel, and a worker
killed mid-sweep. Each runs on SQLite with the filesystem broker and on PostgreSQL
with Redis. The tests of a cancel and of a worker killed mid-sweep wait for
trials at given points, so they run alone (marked serial)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from store import Epoch, Session, Sweep, TrainedModel
from store.settings import Settings
from tests.service.api_helpers import client_for, new_key
from tests.service.cli_process import BACKPROP
from tests.service.conftest import (
    bound,
    create_database,
    delete_redis_keys,
    drop_database,
    environment,
    sqlite_env,
)
from tests.service.processes import ApiProcess, WorkerProcess, wait_for
from tests.service.test_reliability import stopped
from worker import sweeps as sw
from worker.training import run_job

FAST_RECOVERY = {
    "BACKPROP_LEASE_SECONDS": "2",
    "BACKPROP_CHECKPOINT_SECONDS": "0.3",
    "BACKPROP_REQUEUE_SECONDS": "1",
    "BACKPROP_RECONCILE_SECONDS": "0.3",
    "BACKPROP_EPOCH_FLUSH_SECONDS": "0.1",
}


@pytest.fixture(scope="module", params=["sqlite-filesystem", "postgres-redis"])
def isolated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Settings]]:
    """A database, broker and queue of this module's own, with fast recovery."""
    data_dir = tmp_path_factory.mktemp("sweeps")
    if request.param == "postgres-redis":
        url = create_database("sweeps")
        env = environment(url, "sweeps", data_dir)
    else:
        env = sqlite_env(data_dir)
        url = env["DATABASE_URL"]
    env.update(FAST_RECOVERY)
    with bound(env) as settings:
        yield env, settings
    if settings.broker_is_filesystem:
        return
    delete_redis_keys(env["BROKER_PREFIX"])
    drop_database(url)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(env: dict[str, str], log_dir: Path, workers: list[WorkerProcess]) -> WorkerProcess:
    worker = WorkerProcess(env, log_dir)
    workers.append(worker)
    worker.wait_ready()
    return worker


def classes(n: int = 240, seed: int = 5) -> dict[str, Any]:
    """Two classes by the sign of a sum of three of six features, as a JSON dataset."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    labels = np.where(x[:, :3].sum(axis=1) > 0, "pos", "neg")
    return {"name": "signs", "inputs": x.round(4).tolist(), "targets": labels.tolist()}


@pytest.fixture(scope="module")
def api(isolated: tuple[dict[str, str], Settings]) -> tuple[FlaskClient, int]:
    """An in-process API on the module's backend, and a stored dataset of its owner."""
    _, settings = isolated
    client = client_for(settings, owner="sweeper")
    answer = client.post("/datasets", json=classes())
    assert answer.status_code == 201, answer.json
    return client, answer.json["id"]  # type: ignore[index]


def sweep_body(dataset_id: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": dataset_id,
        "network": {"layers": [{"units": 8, "activation": "tanh"}]},
        "training": {
            "epochs": 27,
            "batch_size": 16,
            "optimizer": {"name": "sgd", "learning_rate": 0.05},
            "validation_split": 0.25,
            "test_split": 0.2,
        },
        "search_space": {
            "training.optimizer.learning_rate": {"log_uniform": [1e-4, 0.5]},
            "network.layers[0].units": {"choice": [2, 4, 16]},
        },
        "trials": 6,
        "parallel": 2,
        "sampler": {"name": "random", "seed": 11},
        "pruner": {"name": "asha", "min_resource": 3, "reduction_factor": 3},
        "metric": "val_loss",
    }
    return {**body, **fields}


def sweep_of(client: FlaskClient, sweep_id: int) -> dict[str, Any]:
    answer = client.get(f"/sweeps/{sweep_id}")
    assert answer.status_code == 200, answer.json
    return answer.json  # type: ignore[return-value]


def ended(client: FlaskClient, sweep_id: int, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        sweep = sweep_of(client, sweep_id)
        return sweep if sweep["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, 0.2, f"sweep {sweep_id} to end")


def study_states(settings: Settings, sweep_id: int) -> dict[int, str]:
    """The study's trials by number: their Optuna state's name."""
    import optuna

    with Session.begin() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        name = sweep.study_name
    study = optuna.load_study(study_name=name, storage=sw.study_storage(settings.database_url))
    return {trial.number: trial.state.name for trial in study.get_trials(deepcopy=False)}


def epochs_of(job_id: int) -> list[int]:
    with Session.begin() as session:
        return list(
            session.scalars(select(Epoch.epoch).where(Epoch.job_id == job_id).order_by(Epoch.epoch))
        )


def test_a_sweep_runs_its_trials_prunes_some_and_marks_the_best(
    isolated: tuple[dict[str, str], Settings],
    api: tuple[FlaskClient, int],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    env, settings = isolated
    client, dataset_id = api
    start_worker(env, tmp_path, workers)
    answer = client.post("/sweeps", json=sweep_body(dataset_id))
    assert answer.status_code == 202, answer.json
    created = answer.json
    assert created["status"] == "queued" and created["trials_total"] == 6
    assert answer.headers["Location"] == f"/sweeps/{created['id']}"
    assert len(created["trials"]) == 2  # parallel: the first two trials, queued

    sweep = ended(client, created["id"])
    assert sweep["status"] == "succeeded", sweep
    trials = sweep["trials"]
    assert [trial["number"] for trial in trials] == list(range(6))
    assert len({trial["job_id"] for trial in trials}) == 6
    states = {trial["state"] for trial in trials}
    assert states <= {"complete", "pruned"} and "pruned" in states, trials
    for trial in trials:
        job = client.get(f"/jobs/{trial['job_id']}").json
        assert job["sweep_id"] == sweep["id"] and job["trial_number"] == trial["number"]
        assert job["status"] == "succeeded" and job["model_id"] is not None
        epochs = epochs_of(trial["job_id"])
        assert epochs == list(range(1, trial["epochs_completed"] + 1))
        assert set(trial["params"]) == set(sweep_body(dataset_id)["search_space"])
        if trial["state"] == "pruned":
            # stopped at one of ASHA's rungs (3, 9), keeping its epochs and a model
            assert trial["stop_reason"] == "pruned" and trial["epochs_completed"] in (3, 9)
            summary = client.get(f"/models/{job['model_id']}").json["summary"]
            assert summary["message"] == (
                f"pruned by its sweep's pruner after epoch {trial['epochs_completed']}"
            )
        else:
            assert trial["stop_reason"] == "max_epochs" and trial["epochs_completed"] == 27
        spec = client.get(f"/jobs/{trial['job_id']}/spec").json
        assert spec["network"]["layers"][0]["units"] == trial["params"]["network.layers[0].units"]
        assert spec["training"]["optimizer"]["learning_rate"] == pytest.approx(
            trial["params"]["training.optimizer.learning_rate"]
        )
    complete = [trial for trial in trials if trial["state"] == "complete"]
    best = min(complete, key=lambda trial: trial["value"])
    assert sweep["best"]["job_id"] == best["job_id"]
    # the best trial's model is marked, and only it
    model_ids = {
        trial["job_id"]: client.get(f"/jobs/{trial['job_id']}").json["model_id"] for trial in trials
    }
    marked = {
        job_id
        for job_id, model_id in model_ids.items()
        if client.get(f"/models/{model_id}").json["lineage"]["best_of_sweep"]
    }
    assert marked == {best["job_id"]}
    listed = client.get("/models?limit=100").json["models"]
    assert {m["job_id"] for m in listed if m["lineage"]["best_of_sweep"]} == {best["job_id"]}
    assert sweep["best"]["value"] == best["value"]
    assert sweep["best"]["model_id"] == client.get(f"/jobs/{best['job_id']}").json["model_id"]
    assert sweep["finished_at"] is not None
    states_in_study = study_states(settings, sweep["id"])
    assert states_in_study == {trial["number"]: trial["state"].upper() for trial in trials}, (
        "the study and the API agree"
    )
    listed = client.get("/sweeps").json["sweeps"]
    assert listed[0]["id"] == sweep["id"] and "trials" not in listed[0]
    # another owner sees nothing of it
    stranger = client_for(settings, owner="stranger")
    assert stranger.get(f"/sweeps/{sweep['id']}").status_code == 404
    assert stranger.post(f"/sweeps/{sweep['id']}/cancel").status_code == 404
    assert client.post(f"/sweeps/{sweep['id']}/cancel").status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"search_space": {"network.layers[0].units": {"choice": []}}}, "network.layers[0].units"),
        ({"search_space": {"network.layers[5].units": {"choice": [3]}}}, "network.layers[5].units"),
        ({"search_space": {"training.nope": {"choice": [3]}}}, "training.nope"),
        ({"search_space": {"weights": {"choice": [3]}}}, "weights"),
        ({"search_space": {"network.layers[0].units": {"choice": [0, 4]}}}, "layers[0].units"),
        ({"search_space": {"training.l2": {"uniform": [1, 0.5]}}}, "training.l2"),
        ({"search_space": {"training.l2": {"log_uniform": [0, 1]}}}, "training.l2"),
        ({"search_space": {"training.l2": {"between": [0, 1]}}}, "training.l2"),
        ({"search_space": {"training.batch_size": {"int_uniform": [1.5, 4]}}}, "batch_size"),
        (
            {"search_space": {"training.optimizer.learning_rate": {"choice": [0.1, -1]}}},
            "learning_rate",
        ),
        ({"trials": 1001}, "trials"),
        ({"trials": 0}, "trials"),
        ({"parallel": 0}, "parallel"),
        ({"sampler": "annealing"}, "sampler.name"),
        ({"sampler": {"name": "random", "seed": -1}}, "sampler.seed"),
        ({"sampler": {"name": "random", "speed": 1}}, "sampler.speed"),
        ({"sampler": "grid"}, "sampler"),
        ({"pruner": "lucky"}, "pruner.name"),
        ({"pruner": {"name": "asha", "reduction_factor": 1}}, "pruner.reduction_factor"),
        ({"pruner": {"name": "asha", "min_resource": 27}}, "pruner.min_resource"),
        ({"metric": "val_f1"}, "metric"),
        ({"metric": "val_loss", "direction": "maximize"}, "direction"),
        ({"metric": "test_rmse"}, "metric"),
        ({"metric": "test_accuracy", "training": {"epochs": 5}}, "training.test_split"),
        ({"training": {"epochs": 5}}, "training.validation_split"),
        ({"training": {"epochs": 0, "validation_split": 0.2}}, "training.epochs"),
        ({"dataset_id": 999999}, "dataset_id"),
        # trials that would all fail: whole-number fields drawn as fractions, values
        # the dataset refuses, splits a metric needs set to 0, metrics of other tasks
        (
            {"search_space": {"network.layers[0].units": {"uniform": [2, 16]}}},
            'search_space["network.layers[0].units"]',
        ),
        (
            {"search_space": {"training.batch_size": {"log_uniform": [8, 64]}}},
            'search_space["training.batch_size"]',
        ),
        (
            {"search_space": {"training.epochs": {"uniform": [10, 30]}}},
            'search_space["training.epochs"]',
        ),
        ({"search_space": {"network.input_dim": {"choice": [6, 7]}}}, "network.input_dim"),
        (
            {"search_space": {"network.layers[1].units": {"choice": [1, 2, 5]}}},
            'search_space["network.layers[1].units"]',
        ),
        (
            {"search_space": {"training.validation_split": {"choice": [0, 0.2]}}},
            'search_space["training.validation_split"]',
        ),
        (
            {
                "metric": "test_accuracy",
                "search_space": {"training.test_split": {"choice": [0.2, 0]}},
            },
            'search_space["training.test_split"]',
        ),
        ({"metric": "test_hamming_loss"}, "metric"),
        # at most MAX_DATA_CHECKS values checked against the dataset: seeds by a range
        ({"search_space": {"training.seed": {"choice": list(range(101))}}}, "training.seed"),
        ({"search_space": {"training.batch_size": {"choice": [16, 0]}}}, "training.batch_size"),
    ],
)
def test_a_sweep_that_cannot_run_is_a_422_naming_the_field(
    api: tuple[FlaskClient, int], change: dict[str, Any], field: str
) -> None:
    client, dataset_id = api
    before = client.get("/sweeps").json["sweeps"]
    answer = client.post("/sweeps", json={**sweep_body(dataset_id), **change})
    assert answer.status_code == 422, answer.json
    assert field in answer.json["error"]["field"], answer.json
    assert client.get("/sweeps").json["sweeps"] == before


def test_a_grid_is_capped_at_its_size(api: tuple[FlaskClient, int]) -> None:
    client, dataset_id = api
    body = sweep_body(
        dataset_id,
        sampler="grid",
        search_space={"network.layers[0].units": {"choice": [2, 3]}},
        trials=10,
        pruner="none",
    )
    answer = client.post("/sweeps", json=body)
    assert answer.status_code == 202, answer.json
    assert answer.json["trials_total"] == 2
    assert client.post(f"/sweeps/{answer.json['id']}/cancel").status_code == 202
    assert sweep_of(client, answer.json["id"])["status"] == "cancelled"


def test_a_huge_grid_is_a_422_without_being_built(api: tuple[FlaskClient, int]) -> None:
    """Three choices of 1000 values are 10^9 points: refused from their counts (the
    grid built would take tens of GB), at once."""
    client, dataset_id = api
    space = {
        "network.layers[0].units": {"choice": list(range(1, 1001))},
        "training.optimizer.learning_rate": {"choice": [k / 1e4 for k in range(1, 1001)]},
        "training.l2": {"choice": [k / 1e6 for k in range(1000)]},
    }
    body = sweep_body(dataset_id, sampler="grid", search_space=space, trials=1, pruner="none")
    started = time.monotonic()
    answer = client.post("/sweeps", json=body)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == "search_space"
    assert "100,000" in answer.json["error"]["message"]
    assert time.monotonic() - started < 10


def test_only_values_that_can_change_the_datasets_answer_are_checked_against_it(
    api: tuple[FlaskClient, int],
) -> None:
    """1000 learning rates and 50 hidden widths are checked against the spec alone;
    a seed range (two values) against the dataset."""
    client, dataset_id = api
    space = {
        "training.optimizer.learning_rate": {"choice": [k / 1e4 for k in range(1, 1001)]},
        "network.layers[0].units": {"choice": list(range(1, 51))},
        "training.seed": {"int_uniform": [0, 2**20]},
    }
    assert sw.data_checks(sw.parse_search_space(space), 2) == 2
    started = time.monotonic()
    answer = client.post("/sweeps", json=sweep_body(dataset_id, search_space=space, trials=1))
    assert answer.status_code == 202, answer.json
    assert time.monotonic() - started < 10
    assert client.post(f"/sweeps/{answer.json['id']}/cancel").status_code == 202


def test_a_sweep_admitted_with_a_huge_grid_fails_and_can_be_cancelled(
    isolated: tuple[dict[str, str], Settings], api: tuple[FlaskClient, int]
) -> None:
    """A sweep row past the grid's limit (admitted before there was one) is never
    drawn from: advance fails it; and a cancel, which does not depend on the
    sampler, ends such a sweep cancelled."""
    _, settings = isolated
    client, dataset_id = api
    space = {f"training.l{k}": {"choice": list(range(100))} for k in range(3)}
    ids = []
    for _ in range(2):
        answer = client.post("/sweeps", json=sweep_body(dataset_id, trials=1, parallel=1))
        assert answer.status_code == 202, answer.json
        client.post(f"/sweeps/{answer.json['id']}/cancel")
        with Session.begin() as session:
            row = session.get(Sweep, answer.json["id"])
            assert row is not None
            legacy = Sweep(
                **{
                    column: getattr(row, column)
                    for column in ("owner", "dataset_id", "network", "training", "trials")
                    + ("parallel", "sampler_options", "pruner", "pruner_options", "metric")
                    + ("direction",)
                },
                search_space=space,
                sampler="grid",
                status="queued",
                cancel_requested=False,
                study_name=f"{row.study_name}-legacy",
            )
            session.add(legacy)
            session.flush()
            ids.append(legacy.id)
            name = legacy.study_name
        sw.create_study(settings.database_url, name, "minimize")
    assert sw.advance(ids[0], settings.database_url, lambda _: None) == []
    failed = sweep_of(client, ids[0])
    assert failed["status"] == "failed" and "100,000" in failed["error"], failed
    assert client.post(f"/sweeps/{ids[1]}/cancel").status_code == 202
    assert sweep_of(client, ids[1])["status"] == "cancelled"


def three_classes(client: FlaskClient) -> int:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 4))
    labels = np.array(["a", "b", "c"])[np.argmax(x[:, :3], axis=1)]
    body = {"name": "three", "inputs": x.round(4).tolist(), "targets": labels.tolist()}
    answer = client.post("/datasets", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["id"]  # type: ignore[no-any-return]


def test_a_metric_is_refused_on_a_task_that_does_not_measure_it(
    api: tuple[FlaskClient, int],
) -> None:
    client, _ = api
    answer = client.post("/sweeps", json=sweep_body(three_classes(client), metric="test_roc_auc"))
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == "metric"
    assert "two classes" in answer.json["error"]["message"]
    training = {"validation_split": 0.2, "test_split": 0.2}
    for metric in ("test_roc_auc", "test_log_loss", "test_balanced_accuracy", "test_rmse"):
        with pytest.raises(sw.SweepError) as caught:
            sw.check_metric(metric, None, training, "multilabel", "none")
        assert caught.value.field == "metric"
    for task in ("classification", "regression"):
        with pytest.raises(sw.SweepError):
            sw.check_metric("test_hamming_loss", None, training, task, "none")
    assert sw.check_metric("test_hamming_loss", None, training, "multilabel", "none")
    assert sw.check_metric("test_accuracy", None, training, "multilabel", "asha")
    assert sw.check_metric("test_roc_auc", None, training, "classification", "asha", 2)


@pytest.mark.parametrize(
    ("epochs", "pruner", "options"),
    [(3, "asha", {"min_resource": 1}), (8, "asha", {"min_resource": 4}), (1, "none", {})],
)
def test_a_default_pruner_fits_short_trials(
    api: tuple[FlaskClient, int], epochs: int, pruner: str, options: dict[str, int]
) -> None:
    """No pruner given: ASHA's default min_resource (4) is lowered for trials of fewer
    epochs; one-epoch trials are not pruned. A min_resource the request gives is
    kept, and refused when no trial could be pruned with it."""
    client, dataset_id = api
    body = sweep_body(dataset_id, trials=1, parallel=1)
    del body["pruner"]
    body["training"] = {**body["training"], "epochs": epochs}
    answer = client.post("/sweeps", json=body)
    assert answer.status_code == 202, answer.json
    assert answer.json["pruner"] == pruner
    client.post(f"/sweeps/{answer.json['id']}/cancel")
    with Session.begin() as session:
        row = session.get(Sweep, answer.json["id"])
        assert row is not None
        assert {key: row.pruner_options[key] for key in options} == options
    given = {**body, "pruner": {"name": "asha", "min_resource": 4}}
    if epochs <= 4:
        answer = client.post("/sweeps", json=given)
        assert answer.status_code == 422, answer.json
        assert answer.json["error"]["field"] == "pruner.min_resource"


def test_a_sweeps_dataset_cannot_be_deleted_until_the_sweep_ends(
    isolated: tuple[dict[str, str], Settings], api: tuple[FlaskClient, int]
) -> None:
    """Between two trials no job of the sweep is queued or running, yet the sweep
    still needs its dataset: deleting it is a 409 until the sweep has ended."""
    _, settings = isolated
    client, _ = api
    dataset_id = client.post("/datasets", json=classes(n=80)).json["id"]
    body = sweep_body(dataset_id, trials=2, parallel=1, pruner="none")
    body["training"] = {**body["training"], "epochs": 3}
    sweep = client.post("/sweeps", json=body).json
    run_job(sweep["trials"][0]["job_id"], settings)  # the trial ends; its successor is not drawn
    assert sweep_of(client, sweep["id"])["trials"][0]["status"] == "succeeded"
    answer = client.delete(f"/datasets/{dataset_id}")
    assert answer.status_code == 409, answer.json
    assert f"sweep {sweep['id']}" in answer.json["error"]["message"]
    assert client.post(f"/sweeps/{sweep['id']}/cancel").status_code == 202
    assert sweep_of(client, sweep["id"])["status"] in ("cancelled", "failed")
    assert client.delete(f"/datasets/{dataset_id}").status_code == 204


def test_a_sweep_is_deleted_whole_and_its_trials_only_with_it(
    isolated: tuple[dict[str, str], Settings], api: tuple[FlaskClient, int]
) -> None:
    """DELETE /jobs/<trial> is a 409 naming the sweep; DELETE /sweeps/<id> is a 409
    until the sweep ends and while a trial's model is a registered version, then
    deletes the trials, their epochs, models and checkpoints, and the study."""
    _, settings = isolated
    client, dataset_id = api
    body = sweep_body(dataset_id, trials=2, parallel=1, pruner="none")
    body["training"] = {**body["training"], "epochs": 3}
    sweep = client.post("/sweeps", json=body).json
    assert client.delete(f"/sweeps/{sweep['id']}").status_code == 409
    while sweep["status"] not in ("succeeded", "failed", "cancelled"):
        for trial in sweep["trials"]:
            if trial["status"] == "queued":
                run_job(trial["job_id"], settings)
                sw.after_job(trial["job_id"], settings.database_url, lambda _: None)
        sweep = sweep_of(client, sweep["id"])
    assert sweep["status"] == "succeeded", sweep
    jobs = [trial["job_id"] for trial in sweep["trials"]]
    best = sweep["best"]["model_id"]
    refused = client.delete(f"/jobs/{sweep['best']['job_id']}")
    assert refused.status_code == 409, refused.json
    assert f"DELETE /sweeps/{sweep['id']}" in refused.json["error"]["message"]
    version = client.post("/registered-models/swept/versions", json={"model_id": best})
    assert version.status_code == 201, version.json
    refused = client.delete(f"/sweeps/{sweep['id']}")
    assert refused.status_code == 409 and "swept" in refused.json["error"]["message"]
    assert sweep_of(client, sweep["id"]) == sweep
    assert (
        client.delete(f"/registered-models/swept/versions/{version.json['version']}").status_code
        == 204
    )
    with Session.begin() as session:
        study = session.get(Sweep, sweep["id"]).study_name  # type: ignore[union-attr]
    assert client.delete(f"/sweeps/{sweep['id']}").status_code == 204
    assert client.get(f"/sweeps/{sweep['id']}").status_code == 404
    assert client.delete(f"/sweeps/{sweep['id']}").status_code == 404
    for job_id in jobs:
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert epochs_of(job_id) == []
    assert client.get(f"/models/{best}").status_code == 404
    with Session.begin() as session:
        assert session.scalar(select(TrainedModel.id).where(TrainedModel.job_id.in_(jobs))) is None
    import optuna

    storage = sw.study_storage(settings.database_url)
    assert study not in {summary.study_name for summary in optuna.get_all_study_summaries(storage)}


def test_a_large_parallel_is_drawn_by_advance_not_in_the_request(
    isolated: tuple[dict[str, str], Settings], api: tuple[FlaskClient, int]
) -> None:
    """POST /sweeps draws DRAWS_IN_REQUEST trials (0.17 s each: parallel 100 took 17 s);
    each later advance (the reconciler's, a trial's end) draws the rest."""
    _, settings = isolated
    client, dataset_id = api
    body = sweep_body(dataset_id, trials=20, parallel=20, pruner="none")
    answer = client.post("/sweeps", json=body)
    assert answer.status_code == 202, answer.json
    assert len(answer.json["trials"]) == sw.DRAWS_IN_REQUEST
    started = sw.advance(answer.json["id"], settings.database_url, lambda _: None, most=5)
    assert len(started) == 5
    sw.advance(answer.json["id"], settings.database_url, lambda _: None)
    trials = sweep_of(client, answer.json["id"])["trials"]
    assert [trial["number"] for trial in trials] == list(range(20))
    assert client.post(f"/sweeps/{answer.json['id']}/cancel").status_code == 202


@pytest.mark.serial
def test_cancelling_a_sweep_cancels_its_trials_and_starts_no_more(
    isolated: tuple[dict[str, str], Settings],
    api: tuple[FlaskClient, int],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    env, _ = isolated
    client, dataset_id = api
    start_worker(env, tmp_path, workers)
    body = sweep_body(dataset_id, trials=8, pruner="none")
    body["training"] = {**body["training"], "epochs": 5000}
    sweep_id = client.post("/sweeps", json=body).json["id"]

    def one_running() -> bool:
        return any(t["epochs_completed"] > 5 for t in sweep_of(client, sweep_id)["trials"])

    wait_for(one_running, 60, 0.1, "a trial to train")
    answer = client.post(f"/sweeps/{sweep_id}/cancel")
    assert answer.status_code == 202, answer.json
    sweep = ended(client, sweep_id, 60)
    assert sweep["status"] == "cancelled"
    assert len(sweep["trials"]) == 2
    for trial in sweep["trials"]:
        assert trial["status"] == "cancelled" and trial["state"] == "fail"
        assert trial["epochs_completed"] < 5000
    assert sweep["best"] is None
    assert client.post(f"/sweeps/{sweep_id}/cancel").status_code == 409


@pytest.mark.serial
def test_a_worker_killed_mid_sweep_changes_nothing_of_its_trials(
    isolated: tuple[dict[str, str], Settings],
    api: tuple[FlaskClient, int],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    env, settings = isolated
    client, dataset_id = api
    first = start_worker(env, tmp_path, workers)
    # ASHA's rungs at epochs 100 and 200 of 400: the trial the kill interrupts before
    # its first rung reports there from its resumed attempt, as the same trial.
    pruner = {"name": "asha", "min_resource": 100, "reduction_factor": 2}
    body = sweep_body(dataset_id, trials=5, pruner=pruner)
    body["training"] = {**body["training"], "epochs": 400}
    sweep_id = client.post("/sweeps", json=body).json["id"]

    def midway() -> int | None:
        trials = sweep_of(client, sweep_id)["trials"]
        done = sum(trial["status"] == "succeeded" for trial in trials)
        running = [t for t in trials if t["status"] == "running" and t["epochs_completed"] > 30]
        return running[0]["job_id"] if done >= 1 and running else None

    # A trial seen running may end before a kill lands (a pruned one within a few
    # epochs): the worker is frozen first, and killed only if the trial is still
    # running in the database; otherwise it goes on and the next trial is watched.
    while True:
        job_id = wait_for(midway, 120, 0.05, "a trial done and another on its way")
        pid = first.process.pid
        os.killpg(pid, signal.SIGSTOP)
        wait_for(lambda pid=pid: stopped(pid), 5, 0.001, "the worker to freeze")
        time.sleep(0.05)  # a commit it had sent has reached the database
        if client.get(f"/jobs/{job_id}").json["status"] == "running":
            first.kill()
            break
        os.killpg(pid, signal.SIGCONT)
    start_worker(env, tmp_path, workers)
    sweep = ended(client, sweep_id, 180)
    assert sweep["status"] == "succeeded", sweep
    trials = sweep["trials"]
    assert [trial["number"] for trial in trials] == list(range(5))
    assert len({trial["job_id"] for trial in trials}) == 5
    for trial in trials:
        assert trial["status"] == "succeeded", trial
        assert epochs_of(trial["job_id"]) == list(range(1, trial["epochs_completed"] + 1))
        if trial["state"] == "pruned":
            assert trial["epochs_completed"] in (100, 200) and trial["stop_reason"] == "pruned"
        else:
            assert trial["state"] == "complete" and trial["epochs_completed"] == 400
    resumed = [client.get(f"/jobs/{t['job_id']}").json["attempt"] for t in trials]
    assert max(resumed) == 2, "the trial the kill interrupted resumed on the second worker"
    assert study_states(settings, sweep_id) == {
        trial["number"]: trial["state"].upper() for trial in trials
    }


def test_the_cli_follows_a_sweep_to_its_end(
    isolated: tuple[dict[str, str], Settings],
    api: tuple[FlaskClient, int],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    env, settings = isolated
    _, dataset_id = api
    start_worker(env, tmp_path, workers)
    server = ApiProcess(env, tmp_path)
    try:
        body = sweep_body(dataset_id, trials=3)
        del body["dataset_id"]
        spec = tmp_path / "sweep.json"
        spec.write_text(json.dumps(body))
        command = [BACKPROP, "sweep", str(spec), "--dataset", str(dataset_id), "--follow"]
        key = new_key("sweeper")
        cli_env = {**os.environ, "BACKPROP_URL": server.base, "BACKPROP_API_KEY": key}
        done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        assert final["status"] == "succeeded" and len(final["trials"]) == 3
        assert f"sweep {final['id']}: succeeded, 3/3 trials done" in done.stderr
        assert f"{final['best']['trial_number']}*" in done.stderr  # the best trial, starred
        lines = subprocess.run(
            [*command, "--json"], env=cli_env, capture_output=True, text=True, timeout=120
        )
        assert lines.returncode == 0, lines.stderr
        events = [json.loads(line) for line in lines.stdout.splitlines()]
        assert events[-1]["sweep"]["status"] == "succeeded"
        assert {e["trial"]["number"] for e in events[:-1]} == {0, 1, 2}
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**body, "search_space": {"training.nope": {"choice": [1]}}}))
        refused = subprocess.run(
            [BACKPROP, "sweep", str(bad), "--dataset", str(dataset_id)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and refused.stderr.startswith("backprop: ")
        assert 'search_space["training.nope"]' in refused.stderr

        # A sweep cancelled while followed: its line starts a line of its own and has
        # no colon without a reason; `backprop sweeps` lists, shows and deletes it.
        long = {**body, "trials": 2, "parallel": 1, "pruner": "none"}
        long["training"] = {**body["training"], "epochs": 5000}
        spec.write_text(json.dumps(long))
        following = subprocess.Popen(
            command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            client = api[0]

            def running() -> int | None:
                newest = client.get("/sweeps?limit=1").json["sweeps"]
                fresh = newest and newest[0]["id"] > final["id"]
                return newest[0]["id"] if fresh and newest[0]["status"] == "running" else None

            sweep_id = wait_for(running, 60, 0.1, "the followed sweep to run")
            cli = [BACKPROP, "sweeps"]
            cancel = subprocess.run([*cli, "cancel", str(sweep_id)], env=cli_env, timeout=60)
            assert cancel.returncode == 0
            out, err = following.communicate(timeout=60)
        finally:
            following.kill()
        assert following.returncode == 1, err
        assert f"\nbackprop: sweep {sweep_id} cancelled\n" in err, err
        assert json.loads(out)["status"] == "cancelled"
        shown = subprocess.run(
            [*cli, "show", str(sweep_id)], env=cli_env, capture_output=True, text=True, timeout=60
        )
        assert json.loads(shown.stdout)["id"] == sweep_id
        listed = subprocess.run(
            [*cli, "list"], env=cli_env, capture_output=True, text=True, timeout=60
        )
        assert listed.stdout.split()[:2] == [str(sweep_id), "cancelled"], listed.stdout
        deleted = subprocess.run(
            [*cli, "delete", str(sweep_id)], env=cli_env, capture_output=True, text=True, timeout=60
        )
        assert deleted.returncode == 0 and deleted.stdout == f"deleted sweep {sweep_id}\n"
        assert client.get(f"/sweeps/{sweep_id}").status_code == 404
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("sampler", "pruner", "metric"),
    [
        ({"name": "tpe", "seed": 3, "n_startup_trials": 2}, "hyperband", "val_accuracy"),
        ("random", {"name": "median", "n_startup_trials": 1}, "test_accuracy"),
        ({"name": "grid", "seed": 1}, {"name": "asha", "min_resource": 2}, "test_log_loss"),
    ],
)
def test_every_sampler_and_pruner_runs_a_sweep_to_its_end(
    isolated: tuple[dict[str, str], Settings],
    api: tuple[FlaskClient, int],
    sampler: Any,
    pruner: Any,
    metric: str,
) -> None:
    """Trials run in this process by the worker's own function, as a worker runs them,
    and the sweep moved on as a worker moves it after each trial."""
    _, settings = isolated
    client, dataset_id = api
    body = sweep_body(dataset_id, sampler=sampler, pruner=pruner, metric=metric, trials=5)
    if sampler == {"name": "grid", "seed": 1}:
        body["search_space"] = {
            "network.layers[0].units": {"choice": [2, 16]},
            "training.optimizer": {"choice": ["sgd", "adam"]},
        }
    answer = client.post("/sweeps", json=body)
    assert answer.status_code == 202, answer.json
    sweep = answer.json
    assert sweep["direction"] == ("minimize" if metric == "test_log_loss" else "maximize")
    run: set[int] = set()
    while sweep["status"] not in ("succeeded", "failed", "cancelled"):
        waiting = [t["job_id"] for t in sweep["trials"] if t["job_id"] not in run]
        assert waiting, sweep
        for job_id in waiting:
            run_job(job_id, settings)
            sw.after_job(job_id, settings.database_url, lambda _: None)
            run.add(job_id)
        sweep = sweep_of(client, sweep["id"])
    assert sweep["status"] == "succeeded", sweep
    expected = 4 if sampler == {"name": "grid", "seed": 1} else 5
    assert sweep["trials_total"] == expected and len(sweep["trials"]) == expected
    if sampler == {"name": "grid", "seed": 1}:
        grid = {
            (t["params"]["network.layers[0].units"], t["params"]["training.optimizer"])
            for t in sweep["trials"]
        }
        assert len(grid) == 4, "every point of the grid once"
    values = [t["value"] for t in sweep["trials"] if t["state"] == "complete"]
    best = min(values) if metric == "test_log_loss" else max(values)
    assert sweep["best"]["value"] == best
    with Session.begin() as session:
        model = session.get(TrainedModel, sweep["best"]["model_id"])
        assert model is not None
        key = sw.TEST_METRICS[metric][1] if metric in sw.TEST_METRICS else None
        measured = model.metrics[key] if key else model.summary[metric]
    assert measured == pytest.approx(best)
    assert study_states(settings, sweep["id"]) == {
        t["number"]: t["state"].upper() for t in sweep["trials"]
    }
