"""Hostile inputs against a live API (gunicorn and a worker on PostgreSQL + Redis):
each answers a 4xx in the JSON error shape naming the field at fault, none a 500,
and afterwards the service is healthy and predicts as before.

Large JSON bodies of rows take a reading path of their own (pyarrow, no Python
object per value): they are checked here to answer exactly what small ones do.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from store.settings import Settings

from .api_helpers import IRIS_LIKE, SMALL_NET, XOR, client_for, leftover_jobs_cancelled
from .http import call, finished_job, json_error, raw

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def send(base: str, key: str, method: str, path: str, data: bytes, media: str) -> tuple[int, Any]:
    """(status, parsed JSON answer) of a request with a raw body."""
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", media)
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.headers.get_content_type() == "application/json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.headers.get_content_type() == "application/json"
        return error.code, json.loads(error.read())


def npy_header(shape: str, descr: str = "<f8", fortran: str = "False") -> bytes:
    # A plain dtype is a quoted string; sub-array and record dtypes are Python literals.
    quoted = descr if descr[0] in "([" else f"'{descr}'"
    header = f"{{'descr': {quoted}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    text = header.ljust(117).encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


@dataclass(frozen=True)
class Case:
    path: str
    body: bytes
    media: str
    status: int
    field: str | None


def jsonb(document: Any) -> bytes:
    return json.dumps(document).encode()


JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"
LONG = "1" * 140_000
CASES = {
    # NUL bytes, which PostgreSQL cannot store in text
    "nul-in-name-json": Case("/datasets", jsonb({"name": "a\x00b", **XOR}), JSON, 422, "name"),
    "nul-in-name-query": Case("/datasets?name=a%00b&target=y", b"x,y\n1,2\n", CSV, 422, "name"),
    "nul-in-feature-name": Case(
        "/datasets",
        jsonb({"name": "n", **XOR, "feature_names": ["a\x00", "b"]}),
        JSON,
        422,
        "feature_names[0]",
    ),
    # cells past pyarrow's and Python's csv field limits
    "long-cell": Case("/models/{f32}/predict", f"1,2\n1,{LONG}\n".encode(), CSV, 422, "x1"),
    "long-quoted-cell-with-a-line-break": Case(
        "/models/{f32}/predict", f'1,2\n1,"{LONG}\n{LONG}"\n'.encode(), CSV, 422, "x1"
    ),
    "long-header-cell": Case(
        "/models/{named}/predict", f"a,{LONG}\n1,2\n".encode(), CSV, 422, "body"
    ),
    # beyond float32's range, to a float32 model
    "float32-json-1e39": Case(
        "/models/{f32}/predict", jsonb({"inputs": [[1e39, 0]]}), JSON, 422, "inputs[0].x0"
    ),
    "float32-json-3.5e38": Case(
        "/models/{f32}/predict", jsonb({"inputs": [[0, -3.5e38]]}), JSON, 422, "inputs[0].x1"
    ),
    "float32-instances-1e39": Case(
        "/models/{f32}/predict",
        jsonb({"instances": [[1, 1], [1e39, 0]]}),
        JSON,
        422,
        "instances[1].x0",
    ),
    "float32-csv-1e39": Case("/models/{f32}/predict", b"1e39,0\n", CSV, 422, "inputs[0].x0"),
    "float32-csv-3.5e38": Case(
        "/models/{f32}/predict", b"0,1\n3.5e38,0\n", CSV, 422, "inputs[1].x0"
    ),
    "float32-npy-1e300": Case(
        "/models/{f32}/predict",
        npy_header("(1, 2)") + np.array([1e300, 0]).tobytes(),
        NPY,
        422,
        "inputs[0].x0",
    ),
    # past the row limit: refused before the rows are read
    "csv-past-the-row-limit": Case("/models/{f32}/predict", b"1,1\n" * 100_002, CSV, 422, "inputs"),
    # .npy headers that lie about the data
    "npy-shape-overflows": Case(
        "/models/{f32}/predict",
        npy_header("(4294967296, 4294967296)") + bytes(16),
        NPY,
        400,
        "body",
    ),
    "npy-negative-shape": Case(
        "/models/{f32}/predict", npy_header("(-1, 2)") + bytes(32), NPY, 400, "body"
    ),
    "npy-fewer-bytes-than-shape": Case(
        "/models/{f32}/predict", npy_header("(3, 2)") + bytes(32), NPY, 400, "body"
    ),
    "npy-more-bytes-than-shape": Case(
        "/models/{f32}/predict", npy_header("(1, 2)") + bytes(32), NPY, 400, "body"
    ),
    "npy-fortran-order-not-a-bool": Case(
        "/models/{f32}/predict", npy_header("(2, 2)", fortran="1") + bytes(32), NPY, 400, "body"
    ),
    "npy-objects": Case(
        "/models/{f32}/predict", npy_header("(1, 2)", descr="|O") + bytes(16), NPY, 400, "body"
    ),
    "npy-sub-array": Case(
        "/models/{f32}/predict",
        npy_header("(1,)", descr="('<f8', (3,))") + bytes(24),
        NPY,
        400,
        "body",
    ),
    "npy-record": Case(
        "/models/{f32}/predict",
        npy_header("(1,)", descr="[('a', '<f8'), ('b', '<f8')]") + bytes(16),
        NPY,
        400,
        "body",
    ),
    "npy-text": Case(
        "/models/{f32}/predict", npy_header("(1, 2)", descr="<U1") + bytes(8), NPY, 422, "inputs"
    ),
    # specs the worker would fail on, or take hours and gigabytes for
    "a-million-layers": Case(
        "/jobs",
        jsonb(
            {
                "dataset_id": "{xor}",
                "network": {"input_dim": 2, "layers": [{"units": 1}] * 10**6},
                "training": {"epochs": 1},
            }
        ),
        JSON,
        422,
        "network.layers",
    ),
    "invscaling-power-1000": Case(
        "/jobs",
        jsonb(
            {
                "dataset_id": "{xor}",
                "network": SMALL_NET,
                "training": {"epochs": 5, "schedule": {"name": "invscaling", "power": 1000}},
            }
        ),
        JSON,
        422,
        "training.schedule.power",
    ),
    "adam-beta1-one": Case(
        "/jobs",
        jsonb(
            {
                "dataset_id": "{xor}",
                "network": SMALL_NET,
                "training": {"epochs": 5, "optimizer": {"name": "adam", "beta1": 1 - 1e-17}},
            }
        ),
        JSON,
        422,
        "training.optimizer.beta1",
    ),
    "epsilon-zero-in-float32": Case(
        "/jobs",
        jsonb(
            {
                "dataset_id": "{xor}",
                "network": SMALL_NET,
                "training": {
                    "epochs": 5,
                    "dtype": "float32",
                    "optimizer": {"name": "rmsprop", "epsilon": 1e-60},
                },
            }
        ),
        JSON,
        422,
        "training.optimizer.epsilon",
    ),
    "float32-job-on-float64-data-beyond-its-range": Case(
        "/jobs",
        jsonb(
            {
                "dataset_id": "{huge}",
                "network": SMALL_NET,
                "training": {"epochs": 1, "dtype": "float32"},
            }
        ),
        JSON,
        422,
        "dataset_id",
    ),
    "deeply-nested-json": Case("/jobs", b"[" * 200_000 + b"]" * 200_000, JSON, 400, None),
}


@pytest.fixture(scope="module")
def stored(live_api: tuple[str, str]) -> dict[str, int]:
    """A float32 model on XOR, a named model on iris-like rows, and a dataset of numbers
    beyond float32's range."""
    base, key = live_api
    status, xor = call(base, "POST", "/datasets", {"name": "xor", **XOR}, key)
    assert status == 201, xor
    huge = {
        "name": "huge",
        "inputs": [[1e39, 0], [0, 1], [1, 0], [1, 1]],
        "targets": XOR["targets"],
    }
    status, big = call(base, "POST", "/datasets", huge, key)
    assert status == 201, big
    status, iris = send(
        base, key, "POST", "/datasets?name=iris&target=species", IRIS_LIKE.encode(), CSV
    )
    assert status == 201, iris
    jobs = [
        {
            "dataset_id": xor["id"],
            "network": SMALL_NET,
            "training": {"epochs": 3, "dtype": "float32"},
        },
        {
            "dataset_id": iris["id"],
            "network": {"layers": [{"units": 4}]},
            "training": {"epochs": 3, "normalize": "standardize"},
        },
    ]
    models = []
    for job in jobs:
        status, queued = call(base, "POST", "/jobs", job, key)
        assert status == 202, queued
        models.append(finished_job(base, queued["id"], key)["model_id"])
    return {"f32": models[0], "named": models[1], "xor": xor["id"], "huge": big["id"]}


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_hostile_input(live_api: tuple[str, str], stored: dict[str, int], case: Case) -> None:
    base, key = live_api
    body = case.body.replace(b'"{xor}"', str(stored["xor"]).encode())
    body = body.replace(b'"{huge}"', str(stored["huge"]).encode())
    status, answer = send(base, key, "POST", case.path.format(**stored), body, case.media)
    assert status == case.status, answer
    assert set(answer) == {"error"}
    assert answer["error"]["code"] and answer["error"]["message"]
    assert answer["error"].get("field") == case.field, answer


def _rows(n: int) -> np.ndarray:
    return np.round(np.random.default_rng(1).uniform(0, 8, (n, 4)), 3)


def test_large_json_bodies_answer_as_small_ones(
    live_api: tuple[str, str], stored: dict[str, int]
) -> None:
    # 40,000 rows make bodies past 1 MiB, read by pyarrow; the first rows alone, by
    # json.loads: the same outputs, row for row.
    base, key = live_api
    path = f"/models/{stored['named']}/predict"
    rows = _rows(40_000)
    objects = [dict(zip(NAMES, row, strict=True)) for row in rows.tolist()]
    large = jsonb({"instances": objects})
    assert len(large) > 1 << 20
    status, answer = send(base, key, "POST", path, large, JSON)
    assert status == 200, answer
    status, small = send(base, key, "POST", path, jsonb({"instances": objects[:3]}), JSON)
    assert status == 200, small
    assert answer["outputs"][:3] == small["outputs"]
    assert answer["labels"][:3] == small["labels"]
    assert len(answer["outputs"]) == 40_000
    # Spaced another way (indent), keys in another order in one row: the same answers.
    objects[5] = dict(reversed(list(objects[5].items())))
    status, other = send(
        base, key, "POST", path, json.dumps({"instances": objects}, indent=1).encode(), JSON
    )
    assert status == 200, other
    assert other["outputs"] == answer["outputs"]
    # A missing key in one row of many is named there, as in a small body.
    del objects[7]["petal_width"]
    status, missing = send(base, key, "POST", path, jsonb({"instances": objects}), JSON)
    assert status == 400
    assert missing["error"]["field"] == "instances[7].petal_width"

    f32 = f"/models/{stored['f32']}/predict"
    pairs = _rows(80_000)[:, :2]
    status, answer = send(base, key, "POST", f32, jsonb({"inputs": pairs.tolist()}), JSON)
    assert status == 200, answer
    status, small = send(base, key, "POST", f32, jsonb({"inputs": pairs[:2].tolist()}), JSON)
    # float32 products differ in the last bits with the batch's size, not the reading.
    np.testing.assert_allclose(answer["outputs"][:2], small["outputs"], rtol=1e-5)
    # Errors of a large body name the row and column.
    pairs[70_000, 1] = 1e39
    status, beyond = send(base, key, "POST", f32, jsonb({"inputs": pairs.tolist()}), JSON)
    assert status == 422
    assert beyond["error"]["field"] == "inputs[70000].x1"
    wide = np.ones((80_000, 3)).tolist()
    status, answer = send(base, key, "POST", f32, jsonb({"inputs": wide}), JSON)
    assert status == 422
    assert answer["error"]["field"] == "inputs[0]"
    too_many = jsonb({"instances": np.ones((100_001, 2)).tolist()})
    status, answer = send(base, key, "POST", f32, too_many, JSON)
    assert status == 422
    assert answer["error"]["code"] == "limit_exceeded"


def test_the_service_is_healthy_after(live_api: tuple[str, str], stored: dict[str, int]) -> None:
    # Runs after the table (pytest keeps file order).
    base, key = live_api
    assert call(base, "GET", "/healthz")[0] == 200
    status, answer = call(
        base, "POST", f"/models/{stored['f32']}/predict", {"inputs": [[0, 1], [1, 1]]}, key
    )
    assert status == 200
    assert len(answer["outputs"]) == 2 and all(0 < out[0] < 1 for out in answer["outputs"])
    buffer = io.BytesIO()
    np.save(buffer, np.array([[0.0, 1.0], [1.0, 1.0]]))
    status, npy = send(
        base, key, "POST", f"/models/{stored['f32']}/predict", buffer.getvalue(), NPY
    )
    assert status == 200 and npy["outputs"] == answer["outputs"]


# --- limits that the default settings leave out of reach: an in-process API with
# smaller ones.


@pytest.fixture(scope="module")
def small_limits(service_settings: Settings) -> Iterator[FlaskClient]:
    client = client_for(service_settings, max_model_bytes=200_000, max_layers=3)
    with leftover_jobs_cancelled(client) as client:
        yield client


def test_a_model_too_large_to_store_is_refused(small_limits: FlaskClient) -> None:
    dataset = small_limits.post("/datasets", json={"name": "xor", **XOR}).json
    wide = {"input_dim": 2, "layers": [{"units": 100}, {"units": 100}, {"units": 1}]}
    job = {
        "dataset_id": dataset["id"],
        "network": wide,
        "training": {"epochs": 1, "optimizer": "adam"},
    }
    response = small_limits.post("/jobs", json=job)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == "network"
    assert "BACKPROP_MAX_MODEL_BYTES" in response.json["error"]["message"]
    # The same network in float32, with plain SGD, fits.
    job["training"] = {"epochs": 1, "dtype": "float32"}
    assert small_limits.post("/jobs", json=job).status_code == 202
    deep = {"input_dim": 2, "layers": [{"units": 2}] * 4}
    response = small_limits.post("/jobs", json={**job, "network": deep})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "network.layers"
    assert "BACKPROP_MAX_LAYERS" in response.json["error"]["message"]


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcXY0\r\n\r\n"],
    ids=["bad-chunk-size", "chunk-without-terminator"],
)
def test_a_broken_chunked_body_is_a_400(
    live_api: tuple[str, str], stored: dict[str, int], chunks: bytes
) -> None:
    base, key = live_api
    port = int(base.rsplit(":", 1)[1])
    head = (
        f"POST /models/{stored['f32']}/predict HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = raw(port, head.encode() + chunks)
    assert status == 400
    assert json_error(status, headers, body)["code"] == "bad_request"
