"""POST /trace and POST /models/<id>/trace on a live service: seed 001's numbers over
HTTP, a trained model's step, and bad bodies answered 4xx naming their field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.trace import MAX_TRACE_PARAMS, parse_traced_network, trace_step
from store import Session
from store import queries as q
from tests import worked_example as seed
from tests.service.http import call, finished_job

TOL = 1e-9


def seed_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "network": copy.deepcopy(seed.NETWORK),
        "inputs": seed.INPUTS[0],
        "targets": seed.TARGETS[0],
        "learning_rate": 0.5,
        "train_bias": False,
    }
    body.update(changes)
    return body


def test_the_seeds_numbers_over_http(live_api: tuple[str, str]) -> None:
    base, key = live_api
    status, answer = call(base, "POST", "/trace", seed_body(), key)
    assert status == 200, answer
    units, weights = answer["units"], answer["weights"]
    assert units["h1"]["net"] == pytest.approx(0.3775, abs=TOL)
    assert units["h1"]["out"] == pytest.approx(0.593269992, abs=TOL)
    assert units["h2"]["out"] == pytest.approx(0.596884378, abs=TOL)
    assert units["o1"]["out"] == pytest.approx(0.751365070, abs=TOL)
    assert units["o2"]["out"] == pytest.approx(0.772928465, abs=TOL)
    assert answer["error"]["total"] == pytest.approx(0.298371109, abs=TOL)
    assert units["o1"]["delta"] == pytest.approx(0.138498562, abs=TOL)
    assert weights["w5"]["gradient"] == pytest.approx(0.082167041, abs=TOL)
    assert weights["w1"]["gradient"] == pytest.approx(0.000438568, abs=TOL)
    assert weights["w5"]["after"] == pytest.approx(0.358916480, abs=TOL)
    assert weights["w1"]["after"] == pytest.approx(0.149780716, abs=TOL)
    assert (weights["w5"]["from"], weights["w5"]["to"]) == ("h1", "o1")
    assert answer["loss"] == "squared_error" and answer["train_bias"] is False
    # The answer is the engine's trace, number for number.
    local = trace_step(
        parse_traced_network(seed.NETWORK),
        seed.INPUTS[0],
        seed.TARGETS[0],
        learning_rate=0.5,
        train_bias=False,
    ).to_json()
    assert answer == local
    # Its network_after traces the second step; its outputs are the seed's after one update.
    status, second = call(base, "POST", "/trace", seed_body(network=answer["network_after"]), key)
    assert status == 200, second
    assert [second["units"]["o1"]["out"], second["units"]["o2"]["out"]] == pytest.approx(
        seed.PREDICTION_AFTER_1, abs=TOL
    )


def test_defaults(live_api: tuple[str, str]) -> None:
    base, key = live_api
    body = seed_body()
    del body["learning_rate"], body["train_bias"]
    status, answer = call(base, "POST", "/trace", body, key)
    assert status == 200, answer
    assert answer["learning_rate"] == 0.5 and answer["train_bias"] is True
    bias = answer["units"]["o1"]["bias"]
    assert bias["after"] == pytest.approx(0.6 - 0.5 * 0.138498562, abs=TOL)


def _train(base: str, key: str, job: dict[str, Any]) -> int:
    status, created = call(base, "POST", "/jobs", job, key)
    assert status == 202, created
    done = finished_job(base, created["id"], key)
    assert done["status"] == "succeeded", done
    return int(done["model_id"])


def test_a_trained_models_step(live_api: tuple[str, str]) -> None:
    base, key = live_api
    # The seed's job for one epoch: the model holds the weights after one update.
    model_id = _train(base, key, seed.job(1))
    status, answer = call(
        base,
        "POST",
        f"/models/{model_id}/trace",
        {"inputs": seed.INPUTS[0], "targets": seed.TARGETS[0]},
        key,
    )
    assert status == 200, answer
    # the job's learning rate and frozen biases
    assert answer["learning_rate"] == 0.5 and answer["train_bias"] is False
    assert [answer["units"]["o1"]["out"], answer["units"]["o2"]["out"]] == pytest.approx(
        seed.PREDICTION_AFTER_1, abs=TOL
    )
    assert answer["weights"]["w5"]["value"] == pytest.approx(seed.WEIGHTS_AFTER_1[1][0][0], abs=TOL)
    # The same step as POST /trace takes it from the model's weights.
    status, weights = call(base, "GET", f"/models/{model_id}/weights", key=key)
    assert status == 200
    network = {"input_dim": weights["input_dim"], "layers": weights["layers"]}
    status, direct = call(base, "POST", "/trace", seed_body(network=network), key)
    assert status == 200
    assert direct == answer
    # A given learning rate and bias rule win over the job's.
    status, given = call(
        base,
        "POST",
        f"/models/{model_id}/trace",
        {
            "inputs": seed.INPUTS[0],
            "targets": seed.TARGETS[0],
            "learning_rate": 0.1,
            "train_bias": True,
        },
        key,
    )
    assert status == 200, given
    w5 = given["weights"]["w5"]
    assert w5["after"] == pytest.approx(w5["value"] - 0.1 * w5["gradient"], abs=1e-15)
    assert given["units"]["o1"]["bias"]["after"] != given["units"]["o1"]["bias"]["value"]

    # Another owner's model is a 404, as every model route answers.
    with Session.begin() as session:
        other = q.create_api_key(session, "trace-other")
    status, error = call(
        base,
        "POST",
        f"/models/{model_id}/trace",
        {"inputs": seed.INPUTS[0], "targets": seed.TARGETS[0]},
        other,
    )
    assert status == 404, error
    assert error["error"]["code"] == "not_found"
    status, error = call(
        base, "POST", f"/models/{model_id}/trace", {"inputs": [0.1], "targets": [0.5, 0.5]}, key
    )
    assert status == 422 and error["error"]["field"] == "inputs", error


def test_a_model_of_a_table_takes_its_encoded_row(live_api: tuple[str, str]) -> None:
    """XOR with named columns, standardized, and Adam: the trace uses the job's learning
    rate, and a row encoded as the model's preprocessing encodes it traces to predict's
    output for the raw row."""
    base, key = live_api
    from api.schemas import XOR_JOB

    job = copy.deepcopy(XOR_JOB)
    job["training"].update(epochs=50, normalize="standardize")
    model_id = _train(base, key, job)
    status, model = call(base, "GET", f"/models/{model_id}", key=key)
    assert status == 200
    norm = model["normalization"]
    raw = [0.0, 1.0]
    encoded = [(x - m) / s for x, m, s in zip(raw, norm["shift"], norm["scale"], strict=True)]
    assert encoded != raw
    status, answer = call(
        base, "POST", f"/models/{model_id}/trace", {"inputs": encoded, "targets": [1]}, key
    )
    assert status == 200, answer
    assert answer["learning_rate"] == 0.05 and answer["loss"] == "squared_error"
    assert answer["train_bias"] is True
    assert list(answer["units"]) == ["i1", "i2", "h1", "h2", "h3", "h4", "o1"]
    status, predicted = call(base, "POST", f"/models/{model_id}/predict", {"inputs": [raw]}, key)
    assert status == 200
    assert answer["units"]["o1"]["out"] == pytest.approx(predicted["outputs"][0][0], abs=1e-12)


def _big_network() -> dict[str, Any]:
    units = MAX_TRACE_PARAMS // 2 + 1
    return {
        "input_dim": 1,
        "layers": [{"units": units, "weights": [[0.1]] * units, "bias": [0.0] * units}],
    }


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            seed_body(network={"input_dim": 2, "layers": [{"units": 2}]}),
            422,
            "validation_error",
            "network.layers[0].weights",
        ),
        (
            seed_body(
                network={
                    "input_dim": 2,
                    "layers": [{"units": 1, "weights": [[0.1, 0.2]], "bias": [0.0]}],
                }
            ),
            422,
            "validation_error",
            "targets",
        ),
        (seed_body(inputs=[0.05]), 422, "validation_error", "inputs"),
        (seed_body(inputs=[0.05, float("nan")]), 422, "validation_error", "inputs[1]"),
        (seed_body(inputs=[0.05, "0.1"]), 422, "validation_error", "inputs[1]"),
        (seed_body(inputs=[]), 422, "validation_error", "inputs"),
        (seed_body(targets=[0.01, 2.0]), 422, "validation_error", "targets"),
        (seed_body(loss="hinge"), 422, "validation_error", "loss"),
        (seed_body(loss="categorical_crossentropy"), 422, "validation_error", "loss"),
        (seed_body(learning_rate=0), 422, "validation_error", "learning_rate"),
        (seed_body(learning_rate=float("inf")), 422, "validation_error", "learning_rate"),
        (seed_body(epochs=3), 422, "validation_error", "epochs"),
        (
            seed_body(network={"input_dim": 0, "layers": []}),
            422,
            "validation_error",
            "network.input_dim",
        ),
        (
            seed_body(network=_big_network(), inputs=[1.0], targets=[0.5]),
            422,
            "limit_exceeded",
            "network",
        ),
        (
            seed_body(network={"input_dim": 1, "layers": [{"units": 1}] * 65}),
            422,
            "limit_exceeded",
            "network.layers",
        ),
        # A model document's fields that would change the forward pass are not skipped.
        (
            seed_body(network={**seed.NETWORK, "normalization": {"method": "standard"}}),
            422,
            "validation_error",
            "network.normalization",
        ),
        (
            seed_body(network={**seed.NETWORK, "dtype": "float32"}),
            422,
            "validation_error",
            "network.dtype",
        ),
    ],
)
def test_bad_bodies_name_their_field(
    live_api: tuple[str, str], body: dict[str, Any], status: int, code: str, field: str
) -> None:
    base, key = live_api
    got, error = call(base, "POST", "/trace", body, key)
    assert got == status, error
    assert error["error"]["code"] == code, error
    assert error["error"]["field"] == field, error


def test_a_trace_needs_a_key(live_api: tuple[str, str]) -> None:
    base, _ = live_api
    status, error = call(base, "POST", "/trace", seed_body())
    assert status == 401, error
    status, error = call(base, "POST", "/models/999999/trace", {"inputs": [1], "targets": [1]}, _)
    assert status == 404, error
