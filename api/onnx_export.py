"""A trained model as an ONNX graph that computes what ``POST /models/<id>/predict`` answers.

The graph is built node by node with ``onnx.helper`` from what :class:`core.Model`
stores, in the order predict applies it:

1. inputs: for a model trained on a table, one input per input column, named after
   the column, shape ``[N, 1]``: number columns in the network's dtype (DOUBLE for a
   float64 model, FLOAT for a float32 one) with NaN for a missing value, category
   columns as STRING with ``""`` (or ``NA``, ``null``... as in a CSV) for a missing
   value. Every model the service trains has this preprocessing, a dataset sent as
   JSON arrays included (its columns are ``x0``, ``x1``...); a :class:`core.Model`
   without it (trained by the engine alone) raises :class:`NotExportable`.
2. preprocessing: missing numbers replaced by the fitted fill value, ``<name>_missing``
   indicators, category text matched as the service reads it (surrounding spaces
   trimmed, missing markers in any case, ``true``/``false`` in any case, and text that
   reads as a number also by its value, as :meth:`core.preprocess.Preprocessor.transform`
   does: ``3.0``, ``3e0`` or ``+3`` for the category ``3``) into one-hot columns, then
   the fitted normalization of the number columns.
3. the network: ``MatMul`` + ``Add`` and the activation of each layer.
4. the outputs: ``outputs`` (``[N, units]``, in the targets' units: a regression's
   target scaling undone) and, for classifiers, ``labels``: class names (STRING
   ``[N]``), class indices (INT64 ``[N]``) for a classifier without class names, or
   0/1 indicators (INT64 ``[N, labels]``) for a multilabel model.

What predict does that the graph does not (it refuses some inputs, and reads a few
rare spellings of numbers that the graph reads by text only) is listed in
:attr:`OnnxExport.omitted` and in the model's ``metadata_props``. What cannot be
expressed at all raises :class:`NotExportable` rather than give a graph with other
numbers.

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

# The categories predict also matches by value: the same function, so the same set.
from core.preprocess import numeric_positions

from .tables import MISSING

# ai.onnx 21: RegexFullMatch (20) reads category text as the service does; onnxruntime
# 1.20 and later run every operator used here in float32 and float64.
OPSET = 21
IR_VERSION = 10

# What pyarrow's utf8_trim_whitespace trims (Python's str.isspace: Unicode's
# White_Space and the separators U+001C-U+001F), in RE2 syntax.
_SPACE = r"[\t-\r\x{1C}-\x{1F}\x{85}\p{Z}]*"

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


# Text the graph reads as a number, and so compares by value with the categories
# that are numbers, as predict does after Python's float(). Restricted to the forms
# where onnxruntime's Cast (C's strtod: leading ASCII white space skipped, parsing
# stops at the number's end, correctly rounded as Python is) gives Python's value and
# never fails: ASCII digits, at most 100 before and after the point and an exponent
# of at most two digits (past leading zeros), so the value is 0 or within 1e-199 and
# 1e199, far from strtod's range errors. After the number, any white space the reader
# trims; before it, ASCII's only (strtod skips no other). Python's other forms (1_000,
# non-ASCII digits, more digits, other white space before the number) are in
# NUMBER_FORMS_OMITTED; inf and nan are not numbers to predict either.
NUMBER_PATTERN = (
    r"[\t-\r ]*[+-]?(?:[0-9]{1,100}(?:\.[0-9]{0,100})?|\.[0-9]{1,100})"
    r"(?:[eE][+-]?0*[0-9]{1,2})?" + _SPACE
)

NUMBER_FORMS_OMITTED = (
    "numbers written with underscores (1_000), non-ASCII digits, more than 100 digits "
    "before or after the point, an exponent past 99, or white space before them other "
    "than spaces, tabs and line breaks"
)


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


_ACTIVATIONS = {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gaussian"}


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
            by_value = numeric_positions(column["categories"])
            if by_value:
                numeric_categories.append(name)
                # which categories text that reads as a number also finds by value
                described[-1]["by_value"] = [column["categories"][k] for k in by_value.values()]
                value = _number_value(graph, name)
                for number, k in by_value.items():
                    # Text and value never point at two categories: text that equals
                    # a category has its value, and a value two categories share is
                    # left out of by_value.
                    equal = graph.op(
                        "Equal",
                        [value, graph.constant(number, f"{name}_value", np.float64)],
                        f"{name}_equal",
                    )
                    matches[k] = graph.op("Or", [matches[k], equal], f"{name}_is")
            if column["missing"]:
                matches.append(
                    graph.op("RegexFullMatch", [name], f"{name}_is", pattern=MISSING_PATTERN)
                )
            for match in matches:
                pieces.append(graph.op("Cast", [match], f"{name}_onehot", to=graph.element))
        else:
            raise NotExportable(
                f"preprocess.columns.{name}", f"columns of kind {column['kind']!r} are not exported"
            )
    if numeric_categories:
        omitted.append(
            "rare spellings of category codes: in "
            + ", ".join(numeric_categories)
            + " the graph matches a number to the category of the same value as predict "
            "does (3.0 or 3e0 for the category 3), except for "
            + NUMBER_FORMS_OMITTED
            + ", which it matches by their text only"
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


def _number_value(graph: _Graph, name: str) -> str:
    """The category column's text as a DOUBLE ``[N, 1]``: its number where the text
    matches :data:`NUMBER_PATTERN`, else NaN (equal to no category)."""
    is_number = graph.op("RegexFullMatch", [name], f"{name}_is_number", pattern=NUMBER_PATTERN)
    # Cast fails on text that is not a number: only the admitted text reaches it.
    text = graph.op(
        "Where", [is_number, name, graph.texts(["nan"], f"{name}_nan")], f"{name}_number_text"
    )
    return graph.op("Cast", [text], f"{name}_number", to=TensorProto.DOUBLE)


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
    for index, activation in enumerate(model.network.activation_names):
        if activation not in _ACTIVATIONS:
            raise NotExportable(
                f"layers[{index}].activation",
                f"the {activation!r} activation has no ONNX translation here",
            )
    if model.preprocessor is None:
        # Unreachable through the service: every job's model has its preprocessing.
        raise NotExportable(
            "preprocess",
            "a model without the service's preprocessing (trained by the engine alone) "
            "is not exported",
        )
    columns = model.preprocessor.input_names
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
    preprocess = model.preprocessor.to_json()
    inputs, described, x = _table_inputs(graph, preprocess, omitted)
    places, width = _number_places(preprocess)
    if width != model.input_dim:
        raise NotExportable(
            "preprocess", f"encodes {width} columns but the network takes {model.input_dim}"
        )
    x = _normalized(graph, x, preprocess["normalization"], places, width)

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
    props["backprop.task"] = _task(model)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return OnnxExport(proto.SerializeToString(), omitted, described, outputs_described)


def _task(model: core.Model) -> str:
    """The task as the model answers it: a target encoder's own, else classification
    for a model whose loss reads its outputs as classes (a sigmoid output trained with
    binary_crossentropy answers class indices in ``labels``), else regression."""
    target = model.target
    if target is not None and target.task != "regression":
        return target.task
    return "classification" if model.is_classifier else "regression"


def _version() -> str:
    try:
        return metadata.version("backprop")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "unknown"
