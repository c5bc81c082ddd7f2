"""GET /models/<id>/export?format=onnx: the exported graph, run by onnxruntime, answers
what POST /models/<id>/predict answers for the same rows.

Models are trained through the service, in process (the test client and the worker's
own attempt, no broker); test_onnx_export_http.py takes the penguins end to end over
HTTP with a live API and worker (in a module of its own: that worker would take
these tests' jobs).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from flask.testing import FlaskClient

from core.activations import ACTIVATIONS
from store.settings import Settings

from .api_helpers import (
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    train_in_process,
)

PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "penguins.csv"
OMITTED = "X-Backprop-Export-Omitted"


# --- helpers --------------------------------------------------------------------


def session_of(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def feeds_for(
    session: ort.InferenceSession, records: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Rows as records (None for missing) -> one [N, 1] array per graph input."""
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        values = [row.get(spec.name) for row in records]
        if spec.type == "tensor(string)":
            feeds[spec.name] = np.array(
                ["" if v is None else str(v) for v in values], dtype=object
            ).reshape(-1, 1)
        else:
            dtype = np.float32 if spec.type == "tensor(float)" else np.float64
            feeds[spec.name] = np.array(
                [math.nan if v is None else float(v) for v in values], dtype=dtype
            ).reshape(-1, 1)
    return feeds


def run(data: bytes, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    session = session_of(data)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds_for(session, records)), strict=True))


def assert_same(got: dict[str, np.ndarray], answer: dict[str, Any], tolerance: float) -> None:
    """The graph's outputs and labels are predict's, outputs to ``tolerance``."""
    expected = np.array(answer["outputs"], dtype=np.float64)
    assert got["outputs"].shape == expected.shape
    np.testing.assert_allclose(got["outputs"], expected, rtol=tolerance, atol=tolerance)
    if answer.get("labels") is None:
        assert "labels" not in got
    else:
        assert got["labels"].tolist() == answer["labels"]


def records_of(text: str, features: list[str], categories: set[str]) -> list[dict[str, Any]]:
    """CSV text as records of the feature columns: numbers as floats, blanks and NA None."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        record: dict[str, Any] = {}
        for name in features:
            cell = row[name].strip()
            if cell in ("", "NA"):
                record[name] = None
            elif name in categories:
                record[name] = cell
            else:
                record[name] = float(cell)
        rows.append(record)
    return rows


def export(client: FlaskClient, model_id: int) -> bytes:
    response = client.get(f"/models/{model_id}/export?format=onnx")
    assert response.status_code == 200, response.json
    assert response.mimetype == "application/octet-stream"
    assert f'filename="model-{model_id}.onnx"' in response.headers["Content-Disposition"]
    omitted = json.loads(metadata(response.data)["backprop.omitted"])
    assert response.headers[OMITTED] == "; ".join(omitted)
    return bytes(response.data)


def metadata(data: bytes) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load_from_string(data).metadata_props}


# --- a small table with every kind of column -------------------------------------


def mixed_table(task: str, seed: int = 0, rows: int = 60) -> str:
    """numbers (one with blanks), a text column (with blanks and stray spaces), a
    true/false column, and targets for ``task``."""
    rng = np.random.default_rng(seed)
    colors = ["red", "green", "blue", "dark blue"]
    targets = {
        "regression": ["y"],
        "bounded": ["y"],
        "binary": ["label"],
        "multiclass": ["label"],
        "multilabel": ["p", "q", "r"],
        "multiregression": ["u", "v"],
    }[task]
    lines = [",".join(["a", "b", "color", "flag", *targets])]
    for i in range(rows):
        a = rng.normal(3.0, 2.0)
        b = rng.normal(-1.0, 0.5) * 100
        color = colors[i % 4]
        flag = "true" if rng.random() < 0.5 else "False"
        cell_a = "" if i % 7 == 3 else f"{a:.4f}"
        cell_color = "" if i % 9 == 4 else (f" {color} " if i % 5 == 0 else color)
        score = a + 0.01 * b + (1.5 if color == "red" else 0.0) + (flag == "true")
        if task == "regression":
            out = [f"{100 * score + 7:.3f}"]
        elif task == "bounded":
            out = [f"{1 / (1 + math.exp(-score + 3)):.4f}"]
        elif task == "binary":
            out = ["yes" if score > 3 else "no"]
        elif task == "multiclass":
            out = ["low" if score < 2 else "mid" if score < 4 else "high"]
        elif task == "multiregression":
            out = [f"{score:.4f}", f"{-1000 * b + a:.2f}"]
        else:
            out = [str(int(score > 2)), str(int(color == "red")), str(int(a > 3))]
        lines.append(",".join([cell_a, f"{b:.3f}", cell_color, flag, *out]))
    return "\n".join(lines) + "\n"


FEATURES = ["a", "b", "color", "flag"]
TEXT = {"color", "flag"}
HIDDEN = [name for name in ACTIVATIONS if not ACTIVATIONS[name].distribution]


def _cases() -> list[tuple[str, str, list[str], str, str]]:
    """(id, task, hidden activations, output activation, dtype): every activation
    hidden and as an output, every output kind, both dtypes."""
    cases = []
    for dtype in ("float64", "float32"):
        for i, hidden in enumerate(HIDDEN):
            second = HIDDEN[(i + 1) % len(HIDDEN)]
            cases.append(("regression", [hidden, second], "identity", dtype))
        cases += [
            ("binary", ["tanh"], "sigmoid", dtype),
            ("multiclass", ["relu"], "softmax", dtype),
            ("multilabel", ["leaky_relu"], "sigmoid", dtype),
            ("multiregression", ["gaussian"], "identity", dtype),
        ]
        # bounded outputs of a regression in [0, 1] (no target scaling)
        for output in ("sigmoid", "tanh", "relu", "leaky_relu", "gaussian", "identity"):
            cases.append(("bounded", ["sigmoid"], output, dtype))
    return [
        (f"{task}-{'+'.join(hidden)}-{output}-{dtype}", task, hidden, output, dtype)
        for task, hidden, output, dtype in cases
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings, owner="onnx")) as c:
        yield c


@pytest.fixture(scope="module")
def mixed_datasets(client: FlaskClient) -> dict[str, tuple[int, str]]:
    """task -> (dataset id, the CSV)."""
    found: dict[str, tuple[int, str]] = {}
    for task, target in [
        ("regression", "y"),
        ("bounded", "y"),
        ("binary", "label"),
        ("multiclass", "label"),
        ("multilabel", "p,q,r"),
        ("multiregression", "u,v"),
    ]:
        text = mixed_table(task, seed=len(found))
        response = client.post(
            f"/datasets?name=mixed-{task}&target={target}",
            data=text,
            content_type="text/csv",
        )
        assert response.status_code == 201, response.json
        found[task] = (response.json["id"], text)  # type: ignore[index]
    return found


def train(client: FlaskClient, dataset_id: int, network: dict[str, Any], **training: Any) -> int:
    job = post_job(
        client,
        dataset_id=dataset_id,
        network=network,
        training={"epochs": 15, "optimizer": "adam", "seed": 3, **training},
    )
    return train_in_process(job["id"])


def predict_records(
    client: FlaskClient, model_id: int, records: list[dict[str, Any]]
) -> dict[str, Any]:
    response = client.post(f"/models/{model_id}/predict", json={"instances": records})
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("task", "hidden", "output", "dtype"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_activation_and_output_kind_matches_predict(
    client: FlaskClient,
    mixed_datasets: dict[str, tuple[int, str]],
    task: str,
    hidden: list[str],
    output: str,
    dtype: str,
) -> None:
    dataset_id, text = mixed_datasets[task]
    layers = [{"units": 5, "activation": name} for name in hidden]
    training: dict[str, Any] = {
        "dtype": dtype,
        "normalize": "standardize" if len(hidden) % 2 else "minmax",
        "preprocess": {"missing_indicator": task != "binary", "impute": "mean"},
    }
    if task == "bounded":
        layers.append({"units": 1, "activation": output})
        training["target_scaling"] = "none"
        training["loss"] = "mse"
    model_id = train(client, dataset_id, {"layers": layers}, **training)
    data = export(client, model_id)

    records = records_of(text, FEATURES, TEXT)
    records += [  # text the reader cleans, and categories never seen
        {"a": None, "b": 12.5, "color": "  NA ", "flag": "TRUE"},
        {"a": 1.0, "b": None, "color": "purple", "flag": " false"},
        {"a": -4.0, "b": 300.0, "color": " dark blue", "flag": None},
    ]
    answer = predict_records(client, model_id, records)
    got = run(data, records)
    tolerance = 1e-6 if dtype == "float64" else 1e-4
    assert_same(got, answer, tolerance)
    element = np.float64 if dtype == "float64" else np.float32
    assert got["outputs"].dtype == element
    meta = metadata(data)
    assert meta["backprop.dtype"] == dtype
    spec = client.get(f"/models/{model_id}").json["spec"]  # type: ignore[index]
    assert [la["activation"] for la in spec["layers"]][: len(hidden)] == hidden
    if task == "bounded":
        assert spec["layers"][-1]["activation"] == output


# --- real tables ----------------------------------------------------------------


def sklearn_csv(name: str) -> tuple[str, list[str]]:
    """A scikit-learn bundled set as CSV with a 'target' column; its feature names."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*names, "target"])
    for row, target in zip(bunch.data, bunch.target, strict=True):
        label = bunch.target_names[target] if hasattr(bunch, "target_names") else target
        writer.writerow([*(repr(float(v)) for v in row), label])
    return out.getvalue(), names


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer", "wine"])
def test_scikit_learn_tables(client: FlaskClient, name: str) -> None:
    text, features = sklearn_csv(name)
    response = client.post(
        f"/datasets?name={name}&target=target", data=text, content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    model_id = train(
        client,
        response.json["id"],  # type: ignore[index]
        {"layers": [{"units": 16, "activation": "tanh"}]},
        normalize="standardize",
        epochs=30,
    )
    data = export(client, model_id)
    records = records_of(text, features, set())
    got = run(data, records)
    answer = predict_records(client, model_id, records)
    assert_same(got, answer, 1e-6)
    if name == "diabetes":  # target scaling undone: outputs in the target's units
        assert metadata(data)["backprop.task"] == "regression"
        assert np.abs(got["outputs"]).mean() > 20


# --- what predict refuses, and what is not exported ----------------------------------


def test_format_and_owner(client: FlaskClient, service_settings: Settings) -> None:
    text = mixed_table("binary")
    dataset = client.post("/datasets?name=fmt&target=label", data=text, content_type="text/csv")
    model_id = train(client, dataset.json["id"], {"layers": [{"units": 3, "activation": "tanh"}]})  # type: ignore[index]

    response = client.get(f"/models/{model_id}/export?format=pmml")
    assert response.status_code == 422
    assert response.json["error"]["field"] == "format"  # type: ignore[index]
    # onnx is the default format
    assert client.get(f"/models/{model_id}/export").status_code == 200

    other = client_for(service_settings, owner="onnx-other")
    response = other.get(f"/models/{model_id}/export?format=onnx")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"  # type: ignore[index]
    assert client.get("/models/999999/export").status_code == 404


def test_omissions_are_named_in_header_and_metadata(client: FlaskClient) -> None:
    """unknown="error" and number-like categories: the graph says what it leaves out,
    and still answers as predict does for every row predict accepts."""
    text = mixed_table("multiclass").replace("False", "0").replace("true", "1.0")
    dataset = client.post(
        "/datasets?name=omit&target=label&categorical=flag", data=text, content_type="text/csv"
    )
    assert dataset.status_code == 201, dataset.json
    model_id = train(
        client,
        dataset.json["id"],  # type: ignore[index]
        {"layers": [{"units": 4, "activation": "sigmoid"}]},
        preprocess={"unknown": "error"},
    )
    response = client.get(f"/models/{model_id}/export?format=onnx")
    header = response.headers[OMITTED]
    assert "unknown categories" in header and 'unknown="error"' in header
    assert "rare spellings of category codes: in flag" in header and "1_000" in header
    omitted = json.loads(metadata(response.data)["backprop.omitted"])
    assert header == "; ".join(omitted) and len(omitted) == 3
    assert "unknown categories" in onnx.load_from_string(response.data).doc_string

    records = records_of(text, FEATURES, TEXT)
    assert_same(run(response.data, records), predict_records(client, model_id, records), 1e-6)
    # what predict refuses, the graph computes (as its omissions say)
    unseen = [{"a": 1.0, "b": 2.0, "color": "purple", "flag": "0"}]
    refused = client.post(f"/models/{model_id}/predict", json={"instances": unseen})
    assert refused.status_code == 400 and refused.json["error"]["field"] == "color"  # type: ignore[index]
    assert run(response.data, unseen)["outputs"].shape == (1, 3)


def test_json_dataset_model(client: FlaskClient) -> None:
    """A dataset sent as JSON arrays: its columns are inputs x0, x1 of numbers; a
    sigmoid trained with binary_crossentropy is a classification with class indices."""
    dataset = post_dataset(client, name="xor-onnx")
    model_id = train(
        client,
        dataset["id"],
        {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        loss="binary_crossentropy",
    )
    data = export(client, model_id)
    rows = [[0, 0], [0, 1], [1, 0], [1, 1], [0.25, -3.5]]
    answer = client.post(f"/models/{model_id}/predict", json={"inputs": rows}).json
    records = [{"x0": r[0], "x1": r[1]} for r in rows]
    session = session_of(data)
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("x0", ["N", 1]), ("x1", ["N", 1])]
    got = run(data, records)
    assert_same(got, answer, 1e-6)  # type: ignore[arg-type]
    assert got["labels"].dtype == np.int64 and set(got["labels"].tolist()) <= {0, 1}
    meta = metadata(data)
    assert meta["backprop.task"] == "classification"
    assert [i["name"] for i in json.loads(meta["backprop.inputs"])] == ["x0", "x1"]
    # A CSV body: a header of exactly x0,x1 is taken, any other names are a 400.
    for header, status in [("x0,x1\n", 200), ("", 200), ("a,b\n", 400), ("x1,x0\n", 400)]:
        response = client.post(
            f"/models/{model_id}/predict", data=header + "0,1\n1,1\n", content_type="text/csv"
        )
        assert response.status_code == status, (header, response.json)
        if status == 200:
            assert response.json["labels"] == got["labels"].tolist()[1:4:2]  # type: ignore[index]


def test_empty_batch(client: FlaskClient, mixed_datasets: dict[str, tuple[int, str]]) -> None:
    dataset_id, _ = mixed_datasets["binary"]
    model_id = train(client, dataset_id, {"layers": [{"units": 3, "activation": "relu"}]})
    got = run(export(client, model_id), [])
    assert got["outputs"].shape == (0, 1) and got["labels"].shape == (0,)


# --- number-like categories: matched by value as predict does -------------------

# Training categories of the column ``code``: numbers, two that share a value (07 and
# 7: text decides those), and a word.
CODES = ["3", "-1", "0", "100", "0.5", "07", "7", "x"]

# How a client may spell them, ordinary and odd.
FORMS = [
    *CODES,
    *["3.0", "3e0", " 3 ", "+3", "3.", "03", "3.0000000000000001", "30e-1", ".3e1", "3E+00"],
    *["-1.0", "-1e0", "-0", "0.0", "0e5", "+0.", "1e2", "100.00", "1E+02", ".5", "5e-1"],
    *["0.50", "7.0", "07.0", " x", "X", "0x3", "inf", "-inf", "Infinity", "3e999", "1" * 101],
    *["3 \u00a0", "\t3\t", "3\u3000", "", "NA", "three", "3,0", "3 3", "e3", "3e", "."],
    *["0.0000000000000000000000000000000000000000000000000000000000000000000000000001e77"],
    # what the graph reads by text only (listed in the export's omissions)
    *["\u00a03.0", "\x1c3.0", "1_00", "\uff13", "1e-999"],
    # (a category's own text among spaces of any kind is text, matched by the graph)
    *["\u00a03", "\x1c3\u2029", "\u3000100\x85"],
]
# The forms of FORMS the graph reads otherwise than predict, as its omissions say.
TEXT_ONLY = {"\u00a03.0", "\x1c3.0", "1_00", "\uff13", "1e-999"}


def codes_table(rows: int = 80) -> str:
    rng = np.random.default_rng(4)
    lines = ["a,code,label"]
    for i in range(rows):
        code = CODES[i % len(CODES)]
        a = rng.normal()
        label = "hi" if (CODES.index(code) % 3 == 0) ^ (a > 1) else "lo" if a > 0 else "mid"
        lines.append(f"{a:.3f},{code},{label}")
    return "\n".join(lines) + "\n"


def differing_rows(
    got: dict[str, np.ndarray], answer: dict[str, Any], tolerance: float
) -> list[int]:
    """The rows where the graph's outputs or label are not predict's."""
    expected = np.array(answer["outputs"], dtype=np.float64)
    close = np.isclose(got["outputs"], expected, rtol=tolerance, atol=tolerance).all(axis=1)
    same = np.array(got["labels"].tolist()) == np.array(answer["labels"])
    return [int(i) for i in np.flatnonzero(~(close & same))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_number_like_categories_by_value(client: FlaskClient, dtype: str) -> None:
    """Every spelling of a code answers as predict does, save the rare ones the export
    lists: 3.0 and 3e0 are the category 3, -1.0 is -1, 1E+02 is 100."""
    response = client.post(
        "/datasets?name=codes&target=label&categorical=code",
        data=codes_table(),
        content_type="text/csv",
    )
    assert response.status_code == 201, response.json
    model_id = train(
        client,
        response.json["id"],  # type: ignore[index]
        {"layers": [{"units": 6, "activation": "tanh"}]},
        dtype=dtype,
        epochs=40,
    )
    data = export(client, model_id)
    omitted = json.loads(metadata(data)["backprop.omitted"])
    assert [o for o in omitted if o.startswith("rare spellings")] == [
        "rare spellings of category codes: in code the graph matches a number to the "
        "category of the same value as predict does (3.0 or 3e0 for the category 3), "
        "except for numbers written with underscores (1_000), non-ASCII digits, more "
        "than 100 digits before or after the point, an exponent past 99, or white space "
        "before them other than spaces, tabs and line breaks, which it matches by their "
        "text only"
    ]
    (code,) = [i for i in json.loads(metadata(data)["backprop.inputs"]) if i["name"] == "code"]
    assert sorted(code["by_value"]) == sorted(["3", "-1", "0", "100", "0.5"])
    records = [{"a": 0.25, "code": form} for form in FORMS]
    records += [{"a": -1.5, "code": form} for form in FORMS]
    answer = predict_records(client, model_id, records)
    got = run(data, records)
    tolerance = 1e-6 if dtype == "float64" else 1e-4
    differ = {records[i]["code"] for i in differing_rows(got, answer, tolerance)}
    assert differ == TEXT_ONLY
    # the by-value forms do move the answer (the test is not vacuous)
    alone = {form: run(data, [{"a": 0.25, "code": form}])["outputs"] for form in FORMS}
    np.testing.assert_array_equal(alone["3.0"], alone["3"])
    np.testing.assert_array_equal(alone["1E+02"], alone["100"])
    assert not np.array_equal(alone["3.0"], alone["three"])
    # 07 and 7 share a value: text decides, and 7.0 is neither (as in predict)
    np.testing.assert_array_equal(alone["7.0"], alone["three"])


def test_forms_the_graph_reads_as_numbers() -> None:
    """The graph's number pattern admits only text that Cast parses to the value
    predict reads (Python's float() of the text the reader trimmed as str.strip()
    does), and no text that predict does not read as a finite number."""
    from onnx import TensorProto, helper, numpy_helper

    from api.onnx_export import NUMBER_PATTERN

    nodes = [
        helper.make_node("RegexFullMatch", ["x"], ["admitted"], pattern=NUMBER_PATTERN),
        helper.make_node("Where", ["admitted", "x", "nan"], ["text"]),
        helper.make_node("Cast", ["text"], ["value"], to=TensorProto.DOUBLE),
    ]
    nan = numpy_helper.from_array(np.array(["nan"], dtype=object), "nan")
    graph = helper.make_graph(
        nodes,
        "forms",
        [helper.make_tensor_value_info("x", TensorProto.STRING, ["N"])],
        [
            helper.make_tensor_value_info("admitted", TensorProto.BOOL, ["N"]),
            helper.make_tensor_value_info("value", TensorProto.DOUBLE, ["N"]),
        ],
        initializer=[nan],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    session = session_of(model.SerializeToString())
    spaces = [chr(c) for c in range(0x3100) if chr(c).isspace()]
    texts = [*FORMS, *(f"3{s}" for s in spaces), *(f"{s}3" for s in spaces)]
    texts += ["9" * 100 + "." + "9" * 100 + "e+099", "0." + "0" * 99 + "1e-0099", "-.0e-99"]
    texts += ["1" * 101, "1e100", "1e-100", "\x1c3", "3\x1c", "3\x1f\u2029"]
    admitted, values = session.run(None, {"x": np.array(texts, dtype=object)})
    for text, ok, value in zip(texts, admitted, values, strict=True):
        try:
            python: float | None = float(text.strip())
        except ValueError:
            python = None
        if ok:
            assert python is not None and math.isfinite(python), repr(text)
            assert value == python, repr(text)
    # trailing white space is any the reader trims, leading ASCII's only
    assert all(admitted[len(FORMS) : len(FORMS) + len(spaces)])
    leading = admitted[len(FORMS) + len(spaces) : len(FORMS) + 2 * len(spaces)]
    assert [s for s, ok in zip(spaces, leading, strict=True) if ok] == list("\t\n\x0b\x0c\r ")


# --- the builder's refusals -----------------------------------------------------------


def _array_model(output: str, units: int, **training: Any) -> Any:
    """A model of the engine alone: no preprocessing, as no service job makes."""
    import core

    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)) * [1.0, 10.0, 100.0]
    t = rng.uniform(size=(40, units))
    spec = {
        "input_dim": 3,
        "layers": [
            {"units": 4, "activation": "leaky_relu"},
            {"units": units, "activation": output},
        ],
    }
    return core.train(spec, {"epochs": 5, "normalize": "minmax", **training}, x, t).model


def test_not_exportable() -> None:
    """An activation without a translation is refused, naming the layer; a model
    without the service's preprocessing, naming it."""
    from api.onnx_export import NotExportable, to_onnx

    model = _array_model("identity", 2)
    with pytest.raises(NotExportable) as raised:
        to_onnx(model)
    assert raised.value.field == "preprocess"
    model.network.activation_names[1] = "swish"
    with pytest.raises(NotExportable) as raised:
        to_onnx(model)
    assert raised.value.field == "layers[1].activation"


def test_odd_names_and_text(client: FlaskClient) -> None:
    """Column names that look like the graph's own, and categories full of regex syntax,
    are taken as plain text."""
    rng = np.random.default_rng(2)
    kinds = ["a.b*", "(x)|y", "naïve \\d", "[z]", "Ünïcode ✓"]
    lines = ["layer0_1,a_isnan_2,Größe (mm)/γ,kind,target"]
    for i in range(50):
        kind = kinds[i % len(kinds)]
        lines.append(f"{rng.normal():.3f},{rng.normal():.3f},{rng.normal():.3f},{kind},{i % 3}")
    text = "\n".join(lines) + "\n"
    response = client.post(
        "/datasets?name=odd&target=target&task=classification", data=text, content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    model_id = train(
        client,
        response.json["id"],  # type: ignore[index]
        {"layers": [{"units": 4, "activation": "tanh"}]},
        normalize="standardize",
    )
    data = export(client, model_id)
    features = ["layer0_1", "a_isnan_2", "Größe (mm)/γ", "kind"]
    records = records_of(text, features, {"kind"})
    records += [
        {"layer0_1": 0.1, "a_isnan_2": None, "Größe (mm)/γ": 2.0, "kind": near}
        for near in ["aXb", "a.bbb", "x", "(x)|y ", "naïve 5", "z", " Ünïcode ✓", "\x1c[z]\x1f"]
    ]
    answer = predict_records(client, model_id, records)
    assert_same(run(data, records), answer, 1e-6)
    assert answer["labels"][0] in ("0", "1", "2")


def test_input_named_like_an_output(client: FlaskClient) -> None:
    text = "labels,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(20))
    response = client.post("/datasets?name=clash&target=y", data=text, content_type="text/csv")
    model_id = train(client, response.json["id"], {"layers": [{"units": 2, "activation": "relu"}]})  # type: ignore[index]
    response = client.get(f"/models/{model_id}/export?format=onnx")
    assert response.status_code == 422
    error = response.json["error"]  # type: ignore[index]
    assert error["code"] == "not_exportable" and error["field"] == "labels"
