"""A trained model: the network plus what prediction needs around it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._types import Array
from .errors import SpecError
from .frame import Frame
from .losses import class_index, is_classifier
from .network import Network
from .normalize import Normalizer
from .preprocess import Preprocessor
from .serialize import pack, unpack
from .spec import parse_network, vector
from .targets import TargetEncoder

FORMAT_VERSION = 1


class Model:
    """Network, input preprocessing, loss and class names; predicts batches.

    A model trained on arrays (:func:`core.train`) normalizes its inputs with a
    ``normalizer``; one trained on a table (:mod:`core.tabular`) encodes typed
    columns with a ``preprocessor`` and reads its outputs through a ``target``
    encoder (class names, multilabel indicators, regression units).
    """

    def __init__(
        self,
        network: Network,
        loss: str,
        normalizer: Normalizer | None = None,
        classes: list[str] | None = None,
        feature_names: list[str] | None = None,
        *,
        preprocessor: Preprocessor | None = None,
        target: TargetEncoder | None = None,
    ) -> None:
        self.network = network
        self.loss = loss
        self.normalizer = normalizer
        self.classes = list(classes) if classes is not None else None
        # names of the input columns, when the training data had them (a CSV header)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.preprocessor = preprocessor
        self.target = target

    @property
    def is_classifier(self) -> bool:
        if self.target is not None and self.target.task != "regression":
            return True
        return is_classifier(self.loss, self.classes)

    @property
    def takes_numbers_only(self) -> bool:
        """Whether rows of numbers in input order can stand for the input columns."""
        if self.preprocessor is None:
            return True
        return all(kind == "number" for kind in self.preprocessor.kinds.values())

    @property
    def input_dim(self) -> int:
        return self.network.input_dim

    def prepare(self, inputs: Any, unknown: str | None = None) -> Array:
        """Inputs as a 2-D array of the network's dtype, normalized as in training.

        ``inputs``: rows of numbers (samples x input columns), or a Frame of the
        model's input columns when it was trained on a table. ``unknown``
        overrides what the preprocessing does with a category it never saw.
        """
        if self.preprocessor is not None:
            if not isinstance(inputs, Frame):
                inputs = self._number_frame(inputs)
            return self.preprocessor.transform(inputs, self.network.dtype, unknown)
        x = _number_rows(inputs, self.input_dim, self.network.dtype)
        if self.normalizer is not None:
            return self.normalizer.apply(x)
        return x

    def _number_frame(self, inputs: Any) -> Frame:
        assert self.preprocessor is not None
        names = self.preprocessor.input_names
        if not self.takes_numbers_only:
            raise SpecError(
                "inputs",
                "this model takes named columns, some of them categories; send rows as "
                f"objects keyed by {', '.join(names)}",
            )
        return Frame.from_arrays(_number_rows(inputs, len(names), np.dtype(np.float64)), names)

    def predict(self, inputs: Any, unknown: str | None = None) -> Array:
        """Network outputs, one row per input row, in the targets' own units.

        ``unknown``: as for :meth:`prepare` (scoring held-out rows encodes
        unseen categories as zeros whatever the model does at predict time).
        """
        outputs = self.network.feedforward(self.prepare(inputs, unknown))
        if self.target is not None:
            return self.target.decode(outputs)
        return outputs

    def labels_from_outputs(self, outputs: Array) -> list[Any]:
        """Class names (or indices when unnamed) for the given outputs; for a
        multilabel model, one list of 0/1 indicators per row."""
        if self.target is not None and self.target.task != "regression":
            return self.target.labels(outputs)
        index = class_index(outputs)
        if self.classes is None:
            return [int(i) for i in index]
        return [self.classes[int(i)] for i in index]

    def output_names(self, target_names: Sequence[str] = ()) -> list[str] | None:
        """What each output column is: a class, a label or a target column (None when
        nothing names them: a model of bare arrays without target names)."""
        target = self.target
        units = self.network.output_dim
        if target is not None:
            if target.task == "classification" and target.classes is not None:
                return [target.classes[-1]] if units == 1 else list(target.classes)
            return list(target.names)
        if self.classes is not None:
            return [self.classes[-1]] if units == 1 else list(self.classes)
        if len(target_names) == units:
            return list(target_names)
        return None

    def predict_labels(self, inputs: Any) -> list[Any]:
        return self.labels_from_outputs(self.predict(inputs))

    # --- serialization -------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Everything but the weights, as JSON-ready values."""
        dims = [self.network.input_dim] + [w.shape[0] for w in self.network.weights]
        # A table's number columns are normalized inside the preprocessing.
        normalizer = self.normalizer
        if normalizer is None and self.preprocessor is not None:
            normalizer = self.preprocessor.normalizer
        return {
            "format": FORMAT_VERSION,
            "input_dim": dims[0],
            "layers": [
                {"units": int(units), "activation": name}
                for units, name in zip(dims[1:], self.network.activation_names, strict=True)
            ],
            "loss": self.loss,
            "dtype": str(self.network.dtype),
            "normalization": None if normalizer is None else normalizer.to_dict(),
            "classes": self.classes,
            "feature_names": self.feature_names,
            "preprocess": None if self.preprocessor is None else self.preprocessor.to_json(),
            "target": None if self.target is None else self.target.to_json(),
        }

    def to_json(self) -> dict[str, Any]:
        """Spec with weights (the network spec format), normalization and class names."""
        data = self.describe()
        for layer, w, b in zip(
            data["layers"], self.network.weights, self.network.biases, strict=True
        ):
            layer["weights"] = w.tolist()
            layer["bias"] = b.tolist()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        spec = parse_network({"input_dim": data["input_dim"], "layers": data["layers"]})
        dtype = np.dtype(data.get("dtype", "float64"))
        weights, biases = [], []
        for index, layer in enumerate(spec.layers):
            if layer.weights is None or layer.bias is None:
                raise SpecError(
                    f"layers[{index}]", "a model needs weights and bias for every layer"
                )
            weights.append(layer.weights.astype(dtype))
            biases.append(layer.bias.astype(dtype))
        network = Network([la.activation for la in spec.layers], weights, biases)
        norm = data.get("normalization")
        normalizer = None
        if norm is not None and data.get("preprocess") is None:
            shift = vector(norm["shift"], "normalization.shift", spec.input_dim)
            scale = vector(norm["scale"], "normalization.scale", spec.input_dim)
            normalizer = Normalizer(norm["method"], shift, scale)
        return cls(
            network,
            data["loss"],
            normalizer,
            data.get("classes"),
            data.get("feature_names"),
            **_encoders(data),
        )

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for i, (w, b) in enumerate(zip(self.network.weights, self.network.biases, strict=True)):
            arrays[f"weights/{i}"] = w
            arrays[f"bias/{i}"] = b
        if self.normalizer is not None:
            arrays["normalization/shift"] = self.normalizer.shift
            arrays["normalization/scale"] = self.normalizer.scale
        meta = self.describe()
        meta["normalization"] = (
            None if self.normalizer is None else {"method": self.normalizer.method}
        )
        return pack(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        arrays, meta = unpack(data)
        count = len(meta["layers"])
        network = Network(
            [layer["activation"] for layer in meta["layers"]],
            [arrays[f"weights/{i}"] for i in range(count)],
            [arrays[f"bias/{i}"] for i in range(count)],
        )
        normalizer = None
        if meta["normalization"] is not None:
            normalizer = Normalizer(
                meta["normalization"]["method"],
                arrays["normalization/shift"],
                arrays["normalization/scale"],
            )
        return cls(
            network,
            meta["loss"],
            normalizer,
            meta["classes"],
            meta.get("feature_names"),
            **_encoders(meta),
        )


def _number_rows(inputs: Any, width: int, dtype: np.dtype[Any]) -> Array:
    """``inputs`` as rows of ``width`` finite numbers of ``dtype`` (one 1-D row allowed).

    Finiteness is checked after the cast, so a value beyond float32's range is
    refused by a float32 model. Raises SpecError naming ``inputs``.
    """
    x = np.asarray(inputs)
    if x.dtype.kind not in "fiu":
        raise SpecError("inputs", f"expected numbers, got values of type {x.dtype}")
    x = x.astype(dtype, copy=False)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != width:
        raise SpecError("inputs", f"expected rows of {width} numbers, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise SpecError("inputs", "must be finite (no NaN or Infinity)")
    return x


def _encoders(data: dict[str, Any]) -> dict[str, Any]:
    """The preprocessor and target encoder of a model's JSON document, if it has them."""
    preprocess, target = data.get("preprocess"), data.get("target")
    return {
        "preprocessor": None if preprocess is None else Preprocessor.from_json(preprocess),
        "target": None if target is None else TargetEncoder.from_json(target),
    }
