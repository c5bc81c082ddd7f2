"""Dataset uploads go to a temporary file, not memory, under their own size limit
(BACKPROP_MAX_UPLOAD_BYTES); other bodies keep BACKPROP_MAX_BODY_BYTES."""

from __future__ import annotations

import io
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask import Request
from flask.testing import FlaskClient

from store.settings import Settings

from .api_helpers import client_for, leftover_jobs_cancelled, stored_frame

MAX_BODY = 20_000
MAX_UPLOAD = 2_000_000


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    limits = {"max_body_bytes": MAX_BODY, "max_upload_bytes": MAX_UPLOAD}
    with leftover_jobs_cancelled(client_for(service_settings, **limits)) as client:
        yield client


@pytest.fixture
def spool_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where uploads are spooled during the test (tempfile's folder)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def no_get_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload that reads its body whole fails the test."""

    def refuse(self: Request, *args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("a dataset upload read its body with get_data")

    monkeypatch.setattr(Request, "get_data", refuse)


def numbers_csv(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).round(4)
    y = (x[:, 0] > 0).astype(int)
    lines = ["a,b,c,y"] + [f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(x, y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def test_an_upload_larger_than_the_body_limit_is_spooled_and_stored(
    client: FlaskClient, spool_folder: Path, no_get_data: None
) -> None:
    body = numbers_csv(5_000)
    assert MAX_BODY < len(body) < MAX_UPLOAD
    response = client.post(
        "/datasets?name=big&target=y&task=classification", data=body, content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    out = response.json
    assert out is not None
    assert (out["n_samples"], out["n_features"]) == (5_000, 3)
    assert list(spool_folder.iterdir()) == []  # the temporary file is gone
    frame = stored_frame(out["id"])
    expected = np.loadtxt(io.BytesIO(body), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(frame["b"].values, expected[:, 1])


def test_a_refused_upload_leaves_no_temporary_file(
    client: FlaskClient, spool_folder: Path, no_get_data: None
) -> None:
    body = numbers_csv(100) + b"1,2,oops,0\n"
    response = client.post("/datasets?name=bad&target=y", data=body, content_type="text/csv")
    assert response.status_code == 422, response.json
    assert response.json is not None
    assert response.json["error"]["message"].startswith("line 102, column 3: 'oops'")
    assert list(spool_folder.iterdir()) == []


def test_upload_past_its_limit_is_413_naming_the_setting(
    client: FlaskClient, spool_folder: Path
) -> None:
    body = numbers_csv(100_000)
    assert len(body) > MAX_UPLOAD
    response = client.post("/datasets?name=huge&target=y", data=body, content_type="text/csv")
    assert response.status_code == 413
    assert response.json == {
        "error": {
            "code": "payload_too_large",
            "message": f"the request body is larger than {MAX_UPLOAD} bytes "
            "(BACKPROP_MAX_UPLOAD_BYTES)",
        }
    }
    # Without a Content-Length (chunked), the limit stops the copy as it passes it.
    chunked = client.post(
        "/datasets?name=huge&target=y",
        input_stream=io.BytesIO(body),
        content_type="text/csv",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413
    assert chunked.json is not None
    assert "BACKPROP_MAX_UPLOAD_BYTES" in chunked.json["error"]["message"]
    assert list(spool_folder.iterdir()) == []


def test_a_chunked_upload_within_the_limit_is_read(client: FlaskClient) -> None:
    body = numbers_csv(2_000)
    response = client.post(
        "/datasets?name=chunked&target=y",
        input_stream=io.BytesIO(body),
        content_type="text/csv",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 201, response.json
    assert response.json is not None and response.json["n_samples"] == 2_000


def test_other_bodies_keep_the_body_limit(client: FlaskClient) -> None:
    records = [{"a": float(i), "y": i % 2} for i in range(2_000)]
    as_json = client.post("/datasets", json={"name": "j", "records": records, "target": "y"})
    assert as_json.status_code == 413
    assert as_json.json is not None
    message = as_json.json["error"]["message"]
    assert message == f"the request body is larger than {MAX_BODY} bytes (BACKPROP_MAX_BODY_BYTES)"
    small = numbers_csv(50)
    created = client.post("/datasets?name=s&target=y", data=small, content_type="text/csv")
    assert created.status_code == 201, created.json
    predict = client.post("/models/1/predict", data=numbers_csv(2_000), content_type="text/csv")
    assert predict.status_code == 413  # before the model is even looked up
    assert predict.json is not None
    assert "BACKPROP_MAX_BODY_BYTES" in predict.json["error"]["message"]


def test_parquet_float32_upload_stays_float32(client: FlaskClient) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4_000, 5)).astype(np.float32)
    x[::11, 2] = np.nan
    columns: dict[str, Any] = {f"x{i}": x[:, i] for i in range(5)}
    columns["y"] = (x[:, 0] > 0).astype(np.int64)
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=1_000)
    response = client.post(
        "/datasets?name=single&target=y&task=classification",
        data=out.getvalue(),
        content_type="application/vnd.apache.parquet",
    )
    assert response.status_code == 201, response.json
    dataset = response.json
    assert dataset is not None
    frame = stored_frame(dataset["id"])
    assert [frame[f"x{i}"].values.dtype for i in range(5)] == [np.float32] * 5
    np.testing.assert_array_equal(frame["x2"].values, x[:, 2])
    profile = {c["name"]: c for c in dataset["profile"]["columns"]}
    assert profile["x2"]["missing"] == int(np.isnan(x[:, 2]).sum())
    observed = x[:, 1].astype(np.float64)
    assert profile["x1"]["mean"] == pytest.approx(observed.mean(), rel=1e-12)
    assert profile["x1"]["min"] == float(x[:, 1].min())
    assert profile["x1"]["distinct"] == np.unique(x[:, 1]).size
    assert profile["x1"]["histogram"]["counts"] == np.histogram(x[:, 1], bins=10)[0].tolist()


def test_spooled_upload_memory_stays_bounded(
    service_settings: Settings, tmp_path: Path, no_get_data: None
) -> None:
    """A 20 MB body whose only large column is ignored: the request allocates far less
    than the body (NumPy and Python allocations, which a body read whole would be)."""
    rows = 4_000
    notes = "n" * 5_000
    text = "a,notes,y\n" + "".join(f"{i % 7}.5,{notes},{i % 2}\n" for i in range(rows))
    path = tmp_path / "body.csv"
    path.write_text(text)
    size = path.stat().st_size
    assert size > 10 * 2**20
    roomy = client_for(service_settings, max_body_bytes=MAX_BODY, max_upload_bytes=64 * 2**20)
    with path.open("rb") as stream:
        tracemalloc.start()
        try:
            response = roomy.post(
                "/datasets?name=wide&target=y&ignore=notes",
                input_stream=stream,
                content_type="text/csv",
                headers={"Content-Length": str(size)},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 201, response.json
    assert response.json is not None and response.json["n_samples"] == rows
    assert peak < size / 4, (peak, size)
