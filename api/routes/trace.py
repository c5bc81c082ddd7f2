"""/trace and /models/<id>/trace: what one backpropagation step computes, number by number.

The engine's own passes (core.trace) on one sample; nothing is stored and no job
runs. Names follow seed 001: units i1.., h1.., o1..; weights w1.. (see api.schemas
TraceOut).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

import core
from core.trace import TraceTooLarge, parse_traced_network, trace_step
from store import Session
from store import queries as q

from ..admission import check_depth
from ..decorators import body, responds
from ..errors import invalid, limit_exceeded
from ..schemas import ModelTraceOut, ModelTraceRequest, TraceOut, TraceRequest
from ..services import state
from .models import served_model
from .rows import mine

bp = Blueprint("trace", __name__)


@bp.post("/trace")
@body(TraceRequest)
@responds(200, TraceOut)
def trace(payload: TraceRequest) -> TraceOut:
    """One step of backpropagation on one sample: the forward pass (every unit's
    `net` and `out`), the error (`error.total` and each output's share), the
    backward pass (every unit's `delta` = dE/dnet, every weight's and bias's
    `gradient`) and the weights `after` one plain gradient-descent update
    (w := w - learning_rate * dE/dw, every gradient taken before any weight moves).

    The network gives every layer's `weights` and `bias`, at most 10,000 numbers in
    all (422 `limit_exceeded` beyond). Errors name the field: `network.layers[0].weights`,
    `inputs`, `targets`, `loss`.

    A network trained by the service runs in its own input space: a model document's
    `normalization`, `preprocess` and a `dtype` other than float64 are refused (422
    naming them) rather than skipped; `POST /models/<id>/trace` traces a trained model.
    """
    check_depth(payload.network, state().settings)
    _refuse_unread(payload.network)
    try:
        network = parse_traced_network(payload.network)
    except TraceTooLarge as exc:
        raise limit_exceeded(exc.field, exc.message) from None
    except core.SpecError as exc:
        raise invalid(exc.field, exc.message) from None
    try:
        step = trace_step(
            network,
            payload.inputs,
            payload.targets,
            loss=payload.loss,
            learning_rate=payload.learning_rate,
            train_bias=payload.train_bias,
        )
    except core.SpecError as exc:
        raise invalid(exc.field, exc.message) from None
    return TraceOut.model_validate(step.to_json())


def _refuse_unread(network: Any) -> None:
    """A model document's fields that would change the forward pass (core.spec accepts
    them in a network spec, for jobs, and does not read them)."""
    if not isinstance(network, dict):
        return
    for name in ("normalization", "preprocess"):
        if network.get(name) is not None:
            raise invalid(
                f"network.{name}",
                "a trace runs the network on inputs already in its own space; "
                "trace a trained model with POST /models/<id>/trace",
            )
    if network.get("dtype", "float64") != "float64":
        raise invalid("network.dtype", "a trace computes in float64; leave dtype out")


@bp.post("/models/<id:model_id>/trace")
@body(ModelTraceRequest)
@responds(200, ModelTraceOut, errors=(404, 409))
def trace_model(model_id: int, payload: ModelTraceRequest) -> ModelTraceOut:
    """One step of backpropagation through a trained model's network, as `POST /trace`
    answers it, with the model's weights and loss.

    The sample is in the network's own space, not the raw columns `predict` takes:
    `inputs` are the row after the model's preprocessing (normalized numbers,
    one-hot categories: `input_dim` numbers), `targets` what the network is
    trained to output (one per output unit: one-hot classes, standardized values
    for a regression whose targets the job standardized). The learning rate and
    `train_bias` default to the training job's; the step is plain gradient
    descent whatever optimizer the job used, on the loss alone (without the job's
    `l2` penalty). Nothing is stored: the model keeps its weights. Another owner's
    model is a 404.
    """
    served = served_model(model_id)
    learning_rate, train_bias = payload.learning_rate, payload.train_bias
    if learning_rate is None or train_bias is None:
        with Session.begin() as session:
            row = mine(session, "model", model_id, q.get_model)
            job = q.get_job(session, row.job_id)
            training = job.training if job is not None else {}
        try:
            config = core.parse_training(training)
        except core.SpecError:
            raise invalid(
                "learning_rate",
                "the training job's config cannot be read; give learning_rate and train_bias",
            ) from None
        if learning_rate is None:
            learning_rate = config.optimizer.learning_rate
        if train_bias is None:
            train_bias = config.train_bias
    try:
        step = trace_step(
            served.model.network,
            payload.inputs,
            payload.targets,
            loss=served.model.loss,
            learning_rate=learning_rate,
            train_bias=train_bias,
        )
    except TraceTooLarge as exc:
        raise limit_exceeded("model", exc.message) from None
    except core.SpecError as exc:
        # The network is the model's own, not a field of this body.
        field = "model" if exc.field.startswith("network") else exc.field
        raise invalid(field, exc.message) from None
    return ModelTraceOut.model_validate(step.to_json())
