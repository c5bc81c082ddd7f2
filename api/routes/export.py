"""``GET /models/<id>/export``: a trained model as a file other runtimes load (ONNX)."""

from __future__ import annotations

import re
from typing import Literal

from flask import Blueprint, Response
from pydantic import Field

from ..decorators import query, responds
from ..errors import ApiError
from ..schemas import Query
from .models import served_model

bp = Blueprint("export", __name__, url_prefix="/models")

ONNX_MEDIA = "application/octet-stream"
OMITTED_HEADER = "X-Backprop-Export-Omitted"


class ExportQuery(Query):
    format: Literal["onnx"] = Field(
        default="onnx", description="The file format; ONNX (opset 21) is the one there is."
    )


def _header_text(items: list[str]) -> str:
    """The omissions on one header line: ASCII, no line breaks, ``; `` between items."""
    text = "; ".join(items)
    text = re.sub(r"[\r\n]+", " ", text)
    return text.encode("ascii", "replace").decode("ascii")


@bp.get("/<id:model_id>/export")
@query(ExportQuery)
@responds(
    200,
    errors=(404, 409, 422),
    media=ONNX_MEDIA,
    headers={
        "Content-Disposition": 'attachment; filename="model-<id>.onnx"',
        OMITTED_HEADER: "What predict does that the graph does not, '; '-separated, "
        "non-ASCII characters as ? (exactly in the file's metadata_props as "
        "backprop.omitted, a JSON list).",
    },
)
def onnx_file(model_id: int, params: ExportQuery) -> Response:
    """The model as an ONNX file that answers as predict does, preprocessing included.

    ``?format=onnx`` (the default) gives an ONNX model of opset 21 whose outputs are
    predict's ``outputs`` and ``labels`` for the same rows.

    Inputs: one per input column of the training dataset, named after the column
    (``x0``, ``x1``... for a dataset sent as JSON arrays), shape [N, 1]: number
    columns in the model's dtype (double for a float64 model, float for a float32 one)
    with NaN for a missing value, category columns as strings with "" (or NA, null...)
    for a missing value, read as predict reads CSV text (spaces trimmed, and text that
    reads as a number matched to a number-like category by value: 3.0 for 3).
    Outputs: ``outputs`` [N, units] in the targets' units (a regression's target
    scaling undone, in the model's dtype), and for classifiers ``labels``: class
    names, class indices (no names) or 0/1 per label (multilabel), as predict's
    ``labels``.

    Omitted (listed in the ``X-Backprop-Export-Omitted`` header and in the file's
    metadata_props ``backprop.omitted``): predict's refusals of input it will not
    compute (infinite numbers, float32 overflow, non-finite outputs, unknown
    categories under ``unknown="error"``), the row limit, and for category columns
    whose categories read as numbers, the rare spellings of numbers the graph
    matches by text only (1_000, non-ASCII digits, over 100 digits, exponents past 99,
    white space other than spaces, tabs and line breaks before the number).

    A model the graph cannot reproduce answers 422 ``not_exportable`` naming the part
    (an activation or dtype without a translation), never a file with other numbers.
    """
    # Imported here: onnx is loaded by the processes that export, not by every worker.
    from ..onnx_export import NotExportable, to_onnx

    served = served_model(model_id)
    try:
        exported = to_onnx(
            served.model,
            name=f"backprop model {model_id}",
            target_names=served.target_names,
            extra_metadata={"backprop.model_id": str(model_id)},
        )
    except NotExportable as exc:
        raise ApiError(422, "not_exportable", exc.message, exc.field) from None
    response = Response(exported.data, mimetype=ONNX_MEDIA)
    response.headers["Content-Disposition"] = f'attachment; filename="model-{model_id}.onnx"'
    response.headers[OMITTED_HEADER] = _header_text(exported.omitted)
    return response
