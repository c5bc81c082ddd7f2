"""The penguins end to end over HTTP: upload, train (a live worker), export, and the
file run by onnxruntime answers as POST /models/<id>/predict does; the README's
snippet runs as written on the exported file. A CSV of number-like category codes
spelled every way answers cell by cell as predict's CSV answer does."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .http import finished_job
from .test_onnx_export import (
    FORMS,
    OMITTED,
    PENGUINS,
    TEXT_ONLY,
    assert_same,
    codes_table,
    differing_rows,
    records_of,
    run,
    session_of,
)


def fetch(
    method: str, url: str, key: str, data: bytes | None = None, content_type: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, lower-cased headers) of one request with the API key."""
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, response.read(), headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}


def trained_and_exported(
    base: str, key: str, spec: dict[str, Any]
) -> tuple[int, bytes, dict[str, str]]:
    """POST /jobs with ``spec``, wait for it to succeed, then export its model as ONNX:
    (model id, the file, the answer's headers)."""
    status, body, _ = fetch(
        "POST", f"{base}/jobs", key, json.dumps(spec).encode(), "application/json"
    )
    assert status == 202, body
    job = finished_job(base, json.loads(body)["id"], key, timeout=120)
    assert job["status"] == "succeeded", job
    model_id: int = job["model_id"]
    status, data, headers = fetch("GET", f"{base}/models/{model_id}/export?format=onnx", key)
    assert status == 200, data
    return model_id, data, headers


def readme_snippet() -> str:
    text = (PENGUINS.parents[1] / "README.md").read_text()
    section = text[text.index("\n## Export to ONNX\n") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_penguins_end_to_end(
    live_api: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upload, train, export and run the file: onnxruntime answers as predict does."""
    base, key = live_api
    text = PENGUINS.read_text()
    status, body, _ = fetch(
        "POST", f"{base}/datasets?name=penguins&target=species", key, text.encode(), "text/csv"
    )
    assert status == 201, body
    spec = {
        "dataset_id": json.loads(body)["id"],
        "network": {"layers": [{"units": 16, "activation": "relu"}]},
        "training": {
            "epochs": 60,
            "optimizer": "adam",
            "normalize": "standardize",
            "preprocess": {"missing_indicator": True},
        },
    }
    model_id, data, headers = trained_and_exported(base, key, spec)
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"] == f'attachment; filename="model-{model_id}.onnx"'
    assert "input checks" in headers[OMITTED.lower()]

    features = [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    records = records_of(text, features, {"island", "sex"})
    got = run(data, records)
    # predict takes the training file itself (its target column ignored)
    status, body, _ = fetch(
        "POST", f"{base}/models/{model_id}/predict", key, text.encode(), "text/csv"
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["output_names"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert len(records) == len(answer["outputs"]) == 344
    assert_same(got, answer, 1e-6)
    assert set(got["labels"]) == {"Adelie", "Chinstrap", "Gentoo"}
    inputs = {i.name: i.type for i in session_of(data).get_inputs()}
    assert inputs["island"] == "tensor(string)" and inputs["year"] == "tensor(double)"

    # The README's snippet, run as written on this file, answers as predict does.
    (tmp_path / "model-7.onnx").write_bytes(data)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(readme_snippet(), scope)
    instance = {
        "island": "Biscoe",
        "bill_length_mm": 47.5,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 218,
        "body_mass_g": 4950,
        "sex": None,
        "year": 2008,
    }
    status, body, _ = fetch(
        "POST",
        f"{base}/models/{model_id}/predict",
        key,
        json.dumps({"instances": [instance]}).encode(),
        "application/json",
    )
    answer = json.loads(body)
    assert scope["labels"].tolist() == answer["labels"]
    np.testing.assert_allclose(scope["outputs"], answer["outputs"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_number_like_codes_in_a_csv(live_api: tuple[str, str], dtype: str) -> None:
    """Codes written 3.0, 3e0, " 3 ", +3, -1.0, 1E+02... in a CSV predict body: the
    graph fed the same cells answers as predict, row by row, but for the rare spellings
    its omissions list."""
    base, key = live_api
    status, body, _ = fetch(
        "POST",
        f"{base}/datasets?name=codes-{dtype}&target=label&categorical=code",
        key,
        codes_table().encode(),
        "text/csv",
    )
    assert status == 201, body
    spec = {
        "dataset_id": json.loads(body)["id"],
        "network": {"layers": [{"units": 6, "activation": "tanh"}]},
        "training": {"epochs": 40, "optimizer": "adam", "seed": 3, "dtype": dtype},
    }
    model_id, data, headers = trained_and_exported(base, key, spec)
    assert "rare spellings of category codes: in code" in headers[OMITTED.lower()]

    records = [{"a": a, "code": form} for a in (0.25, -1.5) for form in FORMS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "code"])
    writer.writerows([[r["a"], r["code"]] for r in records])
    status, body, _ = fetch(
        "POST",
        f"{base}/models/{model_id}/predict?delimiter=,",
        key,
        out.getvalue().encode(),
        "text/csv",
    )
    assert status == 200, body
    answer = json.loads(body)
    assert len(answer["outputs"]) == len(records)
    got = run(data, records)
    tolerance = 1e-6 if dtype == "float64" else 1e-4
    differ = {records[i]["code"] for i in differing_rows(got, answer, tolerance)}
    assert differ == TEXT_ONLY
