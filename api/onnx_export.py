"""A trained model as an ONNX graph that computes what ``POST /models/<id>/predict`` answers.

The graph is built node by node with ``onnx.helper`` from what :class:`core.Model`
stores, in the order predict applies it:

1. inputs: for a model trained on a table, one input per input column, named after
   the column, shape ``[N, 1]``: number columns in the network's dtype (DOUBLE for a
   float64 model, FLOAT for a float32 one) with NaN for a missing value, category
   columns as STRING with ``""`` (or ``NA``, ``null``... as in a CSV) for a missing
   value. A model trained on bare arrays takes one matrix ``inputs``, ``[N, input_dim]``.
2. preprocessing: missing numbers replaced by the fitted fill value, ``<name>_missing``
   indicators, category text matched as the service reads it (surrounding spaces
   trimmed, missing markers in any case, ``true``/``false`` in any case) into one-hot
   columns, then the fitted normalization of the number columns.
3. the network: ``MatMul`` + ``Add`` and the activation of each layer.
4. the outputs: ``outputs`` (``[N, units]``, in the targets' units: a regression's
   target scaling undone) and, for classifiers, ``labels``: class names (STRING
   ``[N]``), class indices (INT64 ``[N]``) for a classifier without class names, or
   0/1 indicators (INT64 ``[N, labels]``) for a multilabel model.

What predict does that the graph does not (it only refuses some inputs, or reads
some the graph reads by text only) is listed in :attr:`OnnxExport.omitted` and in
the model's ``metadata_props``. What cannot be expressed at all raises
:class:`NotExportable` rather than give a graph with other numbers.

No pickle: the file is the ONNX protobuf, with the weights as tensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import core
from core.activations import LEAKY_SLOPE
from core.frame import CATEGORY, NUMBER

from .tables import MISSING

# ai.onnx 21: RegexFullMatch (20) reads category text as the service does; onnxruntime
# 1.20 and later run every operator used here in float32 and float64.
OPSET = 21
IR_VERSION = 10

# Unicode's White_Space, which pyarrow's utf8_trim_whitespace trims (RE2 syntax).
_SPACE = r"[\t-\r\x{85}\p{Z}]*"

# The graph's outputs, named after predict's answer fields.
OUTPUTS = ("outputs", "labels")

_ELEMENT = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.float32): TensorProto.FLOAT}


class NotExportable(Exception):
    """A model the graph cannot reproduce; ``field`` names the part (a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class OnnxExport:
    """A serialized ONNX model and what it leaves out (empty: nothing)."""

    data: bytes
    omitted: list[str]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def _literal(text: str) -> str:
    """``text`` as an RE2 pattern matching exactly it: every character that is not a
    letter, digit or underscore written as its code point, so no text is syntax."""
    return "".join(
        c if (c.isascii() and (c.isalnum() or c == "_")) else f"\\x{{{ord(c):X}}}" for c in text
    )


def category_pattern(category: str) -> str:
    """The RE2 pattern of the input text the service reads as ``category``: the
    category with any surrounding white space, and for ``true``/``false`` (which the
    reader writes in lower case) in any case."""
    flags = "(?i)" if category in ("true", "false") else ""
    return f"{flags}{_SPACE}{_literal(category)}{_SPACE}"


MISSING_PATTERN = f"(?i){_SPACE}(?:{'|'.join(_literal(t) for t in MISSING)}){_SPACE}"


def _reads_as_number(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


class _Graph:
    """Nodes, constants and fresh names of one graph under construction."""

    def __init__(self, dtype: np.dtype[Any], reserved: set[str]) -> None:
        self.dtype = dtype
        self.element = _ELEMENT[dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        # the graph's input and output names, which no intermediate value may take
        self._reserved = reserved
        self._count = 0

    def name(self, hint: str) -> str:
        while True:
            self._count += 1
            candidate = f"{hint}_{self._count}"
            if candidate not in self._reserved:
                return candidate

    def constant(self, value: Any, hint: str, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype or self.dtype)
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(array, name))
        return name

    def texts(self, values: Sequence[str], hint: str) -> str:
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.array(list(values), dtype=object), name))
        return name

    def op(
        self, kind: str, inputs: Sequence[str], hint: str, out: str | None = None, **attrs: Any
    ) -> str:
        result = out or self.name(hint)
        self.nodes.append(helper.make_node(kind, list(inputs), [result], **attrs))
        return result


def _activation(graph: _Graph, name: str, z: str, index: int) -> str:
    """The layer's activation of ``z``, with the operations of core.activations."""
    hint = f"layer{index}_{name}"
    if name == "identity":
        return z
    if name == "sigmoid":
        return graph.op("Sigmoid", [z], hint)
    if name == "tanh":
        return graph.op("Tanh", [z], hint)
    if name == "relu":
        return graph.op("Relu", [z], hint)
    if name == "leaky_relu":
        # max(z, slope * z), as the engine computes it (onnxruntime has no float64 LeakyRelu)
        scaled = graph.op("Mul", [z, graph.constant(LEAKY_SLOPE, "slope")], hint)
        return graph.op("Max", [z, scaled], hint)
    if name == "softmax":
        return graph.op("Softmax", [z], hint, axis=-1)
    if name == "gaussian":
        # exp(-z^2)
        square = graph.op("Mul", [z, z], hint)
        return graph.op("Exp", [graph.op("Neg", [square], hint)], hint)
    raise NotExportable(
        f"layers[{index}].activation", f"the {name!r} activation has no ONNX translation here"
    )


def _value_info(name: str, element: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, element, list(shape))


def _table_inputs(
    graph: _Graph, preprocess: dict[str, Any], omitted: list[str]
) -> tuple[list[onnx.ValueInfoProto], list[dict[str, Any]], str]:
    """One input per column and the encoded matrix ``[N, width]`` before normalization."""
    inputs: list[onnx.ValueInfoProto] = []
    described: list[dict[str, Any]] = []
    pieces: list[str] = []
    numeric_categories: list[str] = []
    for column in preprocess["columns"]:
        name = column["name"]
        if column["kind"] == NUMBER:
            inputs.append(_value_info(name, graph.element, ["N", 1]))
            described.append(
                {"name": name, "kind": NUMBER, "type": str(graph.dtype), "missing": "NaN"}
            )
            missing = graph.op("IsNaN", [name], f"{name}_isnan")
            fill = graph.constant([[column["fill"]]], f"{name}_fill")
            pieces.append(graph.op("Where", [missing, fill, name], f"{name}_filled"))
            if column["indicator"]:
                pieces.append(graph.op("Cast", [missing], f"{name}_missing", to=graph.element))
        elif column["kind"] == CATEGORY:
            inputs.append(_value_info(name, TensorProto.STRING, ["N", 1]))
            described.append(
                {
                    "name": name,
                    "kind": CATEGORY,
                    "type": "string",
                    "missing": '"" (or NA, null, n/a, nan, ?)',
                    "categories": list(column["categories"]),
                }
            )
            matches = [
                graph.op("RegexFullMatch", [name], f"{name}_is", pattern=category_pattern(c))
                for c in column["categories"]
            ]
            if column["missing"]:
                matches.append(
                    graph.op("RegexFullMatch", [name], f"{name}_is", pattern=MISSING_PATTERN)
                )
            for match in matches:
                pieces.append(graph.op("Cast", [match], f"{name}_onehot", to=graph.element))
            if any(_reads_as_number(c) for c in column["categories"]):
                numeric_categories.append(name)
        else:
            raise NotExportable(
                f"preprocess.columns.{name}", f"columns of kind {column['kind']!r} are not exported"
            )
    if numeric_categories:
        omitted.append(
            "category codes by value: in "
            + ", ".join(numeric_categories)
            + " the graph matches categories by their text only, while predict also takes "
            "a number of the same value (2 for the category 2.0)"
        )
    if preprocess["spec"].get("unknown") == "error":
        omitted.append(
            "unknown categories: predict answers 400 for a category the training rows "
            'never had (preprocess unknown="error"); the graph encodes it as all-zero '
            "one-hot columns"
        )
    if not pieces:
        raise NotExportable("preprocess.columns", "the model has no input columns")
    encoded = pieces[0] if len(pieces) == 1 else graph.op("Concat", pieces, "encoded", axis=1)
    return inputs, described, encoded


def _normalized(
    graph: _Graph, x: str, norm: dict[str, Any] | None, places: Sequence[int], width: int
) -> str:
    """(x - shift) / scale on the columns at ``places``; the others minus 0, over 1 (exact)."""
    if norm is None:
        return x
    shift = np.zeros(width)
    scale = np.ones(width)
    shift[list(places)] = norm["shift"]
    scale[list(places)] = norm["scale"]
    # In the network's dtype, as the engine subtracts and divides.
    centered = graph.op("Sub", [x, graph.constant(shift, "shift")], "centered")
    return graph.op("Div", [centered, graph.constant(scale, "scale")], "normalized")


def _number_places(preprocess: dict[str, Any]) -> tuple[list[int], int]:
    """Where the number columns land in the encoded matrix, and its width."""
    places: list[int] = []
    offset = 0
    for column in preprocess["columns"]:
        if column["kind"] == NUMBER:
            places.append(offset)
            offset += 2 if column["indicator"] else 1
        else:
            offset += len(column["categories"]) + (1 if column["missing"] else 0)
    return places, offset


def _labels(
    graph: _Graph, model: core.Model, outputs: str, units: int
) -> tuple[onnx.ValueInfoProto, dict[str, Any]] | None:
    """The ``labels`` output, as predict's ``labels`` field reads the outputs."""
    if not model.is_classifier:
        return None
    target = model.target
    if target is not None and target.task == "multilabel":
        half = graph.constant(0.5, "half")
        flags = graph.op("GreaterOrEqual", [outputs, half], "at_least_half")
        graph.op("Cast", [flags], "labels", out="labels", to=TensorProto.INT64)
        return _value_info("labels", TensorProto.INT64, ["N", units]), {
            "name": "labels",
            "type": "int64",
            "shape": ["N", units],
            "meaning": "1 where the output is 0.5 or more",
        }
    if target is not None and target.task == "classification":
        classes = target.classes
    else:
        classes = model.classes
    if units == 1:
        first = graph.op(
            "Slice",
            [
                outputs,
                graph.constant([0], "start", np.int64),
                graph.constant([1], "end", np.int64),
                graph.constant([1], "axis", np.int64),
            ],
            "first_unit",
        )
        column = graph.op("Squeeze", [first, graph.constant([1], "axis", np.int64)], "unit")
        half = graph.constant(0.5, "half")
        above = graph.op("GreaterOrEqual", [column, half], "at_least_half")
        index = graph.op("Cast", [above], "class_index", to=TensorProto.INT64)
    else:
        # ArgMax picks the first of equal values, as NumPy's argmax does.
        index = graph.op("ArgMax", [outputs], "class_index", axis=1, keepdims=0)
    if classes is None:
        graph.op("Identity", [index], "labels", out="labels")
        return _value_info("labels", TensorProto.INT64, ["N"]), {
            "name": "labels",
            "type": "int64",
            "shape": ["N"],
            "meaning": "class index",
        }
    names = graph.texts(classes, "classes")
    graph.op("Gather", [names, index], "labels", out="labels", axis=0)
    return _value_info("labels", TensorProto.STRING, ["N"]), {
        "name": "labels",
        "type": "string",
        "shape": ["N"],
        "meaning": "class name",
        "classes": list(classes),
    }


def to_onnx(
    model: core.Model,
    *,
    name: str = "backprop model",
    target_names: Sequence[str] = (),
    extra_metadata: dict[str, str] | None = None,
) -> OnnxExport:
    """``model`` as a serialized ONNX graph (opset :data:`OPSET`) and what it omits.

    ``target_names``: the training dataset's target columns (they name a regression's
    outputs when the model itself does not). Raises :class:`NotExportable` for a
    model the graph cannot reproduce (an activation or dtype it has no translation for).
    """
    dtype = np.dtype(model.network.dtype)
    if dtype not in _ELEMENT:
        raise NotExportable("dtype", f"{dtype} networks are not exported (float64 and float32 are)")
    columns = model.preprocessor.input_names if model.preprocessor is not None else ["inputs"]
    for column in columns:
        if column in OUTPUTS:
            raise NotExportable(
                column,
                f"an input column named {column!r} would share its name with the graph's "
                f"output {column!r}; train on the column renamed to export the model",
            )
    graph = _Graph(dtype, {*columns, *OUTPUTS})
    omitted = [
        "input checks: predict refuses infinite numbers, "
        + ("numbers beyond float32's range, " if dtype == np.float32 else "")
        + "rows whose outputs are not finite and more rows than BACKPROP_MAX_PREDICT_ROWS; "
        "the graph computes whatever it is given"
    ]
    if model.preprocessor is not None:
        preprocess = model.preprocessor.to_json()
        inputs, described, x = _table_inputs(graph, preprocess, omitted)
        places, width = _number_places(preprocess)
        if width != model.input_dim:
            raise NotExportable(
                "preprocess", f"encodes {width} columns but the network takes {model.input_dim}"
            )
        x = _normalized(graph, x, preprocess["normalization"], places, width)
    else:
        inputs = [_value_info("inputs", graph.element, ["N", model.input_dim])]
        described = [
            {
                "name": "inputs",
                "type": str(dtype),
                "shape": ["N", model.input_dim],
                "columns": model.feature_names or [f"x{i}" for i in range(model.input_dim)],
            }
        ]
        omitted.append(
            "missing values: predict refuses NaN for a model trained on bare arrays (it "
            "has no imputation); the graph passes it through to NaN outputs"
        )
        norm = None if model.normalizer is None else model.normalizer.to_dict()
        x = _normalized(graph, "inputs", norm, range(model.input_dim), model.input_dim)

    a = x
    network = model.network
    for index, (w, b, activation) in enumerate(
        zip(network.weights, network.biases, network.activation_names, strict=True)
    ):
        hint = f"layer{index}"
        product = graph.op("MatMul", [a, graph.constant(w.T, f"{hint}_weights_t")], hint)
        z = graph.op("Add", [product, graph.constant(b, f"{hint}_bias")], hint)
        a = _activation(graph, activation, z, index)

    units = network.output_dim
    target = model.target
    if (
        target is not None
        and target.task == "regression"
        and target.shift is not None
        and target.scale is not None
    ):
        # outputs * scale + shift, in the network's dtype (predict computes it in float64;
        # for a float32 model the two differ by float32 rounding).
        scaled = graph.op("Mul", [a, graph.constant(target.scale, "target_scale")], "unscaled")
        a = graph.op("Add", [scaled, graph.constant(target.shift, "target_shift")], "unscaled")
    graph.op("Identity", [a], "outputs", out="outputs")
    output_infos = [_value_info("outputs", graph.element, ["N", units])]
    names = model.output_names(target_names)
    outputs_described: list[dict[str, Any]] = [
        {"name": "outputs", "type": str(dtype), "shape": ["N", units], "columns": names}
    ]
    labels = _labels(graph, model, "outputs", units)
    if labels is not None:
        output_infos.append(labels[0])
        outputs_described.append(labels[1])

    doc = (
        "A backprop model: inputs -> preprocessing -> network -> outputs, as "
        "POST /models/<id>/predict computes them. Omitted: " + "; ".join(omitted)
    )
    onnx_graph = helper.make_graph(
        graph.nodes, name, inputs, output_infos, initializer=graph.constants, doc_string=doc
    )
    proto = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="backprop",
        producer_version=_version(),
        doc_string=doc,
    )
    proto.ir_version = IR_VERSION
    props = {
        "backprop.inputs": json.dumps(described),
        "backprop.outputs": json.dumps(outputs_described),
        "backprop.dtype": str(dtype),
        "backprop.omitted": json.dumps(omitted),
        **(extra_metadata or {}),
    }
    if target is not None:
        props["backprop.task"] = target.task
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return OnnxExport(proto.SerializeToString(), omitted, described, outputs_described)


def _version() -> str:
    try:
        return metadata.version("backprop")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "unknown"
