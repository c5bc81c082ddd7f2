"""Decorators that state a view's HTTP contract and enforce it.

``@body(Model)`` parses and validates the request body, ``@query(Model)`` the
query string, ``@responds(status, Model)`` serializes what the view returns.
Each also records itself in the view's :class:`Contract`, from which
``/openapi.json`` is generated, so the document cannot drift from the code.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from flask import Response, jsonify, request
from gunicorn.http.errors import ParseException  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError, from_validation_error, too_large
from .services import state

M = TypeVar("M", bound=BaseModel)
# body() and query() add keyword arguments, so a decorated view's signature differs.
View = Callable[..., Any]

JSON = "application/json"
CSV = "text/csv"
TSV = "text/tab-separated-values"
PARQUET = "application/vnd.apache.parquet"
NPY = "application/x-npy"
TABLES = (CSV, TSV, PARQUET)
# What an upload's body is copied to its temporary file in.
SPOOL_CHUNK = 1 << 20
UPLOAD_SETTING = "BACKPROP_MAX_UPLOAD_BYTES"


@dataclass
class Contract:
    body: type[BaseModel] | None = None
    # query parameters that come with a text/csv body instead of a JSON one
    csv_query: type[BaseModel] | None = None
    npy: bool = False
    query: type[BaseModel] | None = None
    status: int = 200
    response: type[BaseModel] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    errors: set[int] = field(default_factory=set)
    # media type of a success body that is not JSON (an event stream, an image)
    media: str | None = None


def contract_of(view: Callable[..., Any]) -> Contract:
    existing = getattr(view, "__contract__", None)
    if existing is None:
        existing = Contract()
        view.__contract__ = existing  # type: ignore[attr-defined]
    return existing


@dataclass(frozen=True)
class NpyBody:
    """An ``application/x-npy`` request: one array, read without pickle."""

    array: np.ndarray[Any, Any]


@dataclass(frozen=True)
class TableBody:
    """A CSV (``text/csv``, ``text/tab-separated-values``) or Parquet request: its
    query parameters, its bytes as sent (or, for an upload, the path of the temporary
    file they were copied to, which lives as long as the view runs), its media type
    and the charset it declares (``utf-8`` when it declares none)."""

    params: BaseModel
    raw: bytes | Path
    media: str
    charset: str

    @property
    def is_parquet(self) -> bool:
        return self.media == PARQUET


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


# What the server raises while reading a body that breaks HTTP's framing: gunicorn's
# InvalidChunkSize and ChunkMissingTerminator (ParseException), NoMoreData (OSError).
UNREADABLE = (OSError, ParseException)


def _unreadable(exc: Exception) -> ApiError:
    return ApiError(
        400, "bad_request", f"the request body could not be read: {type(exc).__name__}", "body"
    )


def _body_bytes() -> bytes:
    """The whole request body (under BACKPROP_MAX_BODY_BYTES); a body that breaks
    HTTP's framing (a bad chunk size, a chunk without its terminator, a body shorter
    than its Content-Length) is a 400, not a 500."""
    try:
        return request.get_data(cache=False)
    except UNREADABLE as exc:
        raise _unreadable(exc) from None


def _read_json() -> Any:
    raw = _body_bytes()
    if not raw:
        raise ApiError(400, "malformed_json", "the request body is empty; expected a JSON object")
    try:
        # NaN and Infinity literals come through as floats; the schemas refuse them
        # at their exact location.
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _read_table(params: BaseModel, spooled: Path | None = None) -> TableBody:
    charset = request.mimetype_params.get("charset", "utf-8")
    raw = spooled if spooled is not None else _body_bytes()
    return TableBody(params, raw, request.mimetype, charset)


def _spool(file: IO[bytes]) -> None:
    """Copy the request body into ``file`` in chunks, never holding it whole.

    The limit is ``BACKPROP_MAX_UPLOAD_BYTES`` instead of the other bodies'
    ``BACKPROP_MAX_BODY_BYTES``: Werkzeug refuses a larger Content-Length before
    anything is read, and a chunked body once it passes the limit. Raises ApiError
    413 naming the setting.
    """
    limit = state().settings.max_upload_bytes
    request.max_content_length = limit  # this request only (Flask >= 3.1)
    written = 0
    try:
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        stream = request.stream
        while True:
            try:
                chunk = stream.read(SPOOL_CHUNK)
            except UNREADABLE as exc:
                raise _unreadable(exc) from None
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise RequestEntityTooLarge()
            file.write(chunk)
        file.flush()
    except RequestEntityTooLarge:
        raise too_large(limit, UPLOAD_SETTING) from None


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The shape, order and dtype of a .npy header, each checked: NumPy's reader takes
    a negative dimension (reshape would then guess it) and a shape whose product
    overflows."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unknown format version {version}")
    if not isinstance(fortran, bool):
        raise ValueError(f"fortran_order must be True or False, got {fortran!r}")
    if dtype.hasobject:
        raise ValueError("arrays of Python objects are not accepted")
    if dtype.subdtype is not None or dtype.names is not None:
        # a cell of several values: the shape would no longer count the cells
        raise ValueError(f"expected a plain dtype, got the sub-array or record dtype {dtype}")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ValueError(f"the shape must be whole numbers of at least 0, got {shape!r}")
    return shape, fortran, dtype


def _read_npy() -> np.ndarray[Any, Any]:
    """The body's array, as a read-only view of the body (no copy of the data).

    The header must describe exactly the bytes that follow it (Python integers:
    no product that overflows); a dtype of numbers only."""
    raw = _body_bytes()
    stream = io.BytesIO(raw)
    try:
        shape, fortran, dtype = _npy_header(stream)
        count = math.prod(shape)
        data = len(raw) - stream.tell()
        if count * dtype.itemsize != data:
            raise ValueError(
                f"the header's shape {shape} of {dtype} takes {count * dtype.itemsize} bytes, "
                f"the body holds {data} after it"
            )
        flat = np.frombuffer(raw, dtype=dtype, count=count, offset=stream.tell())
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ApiError(
            400, "malformed_npy", f"the body is not a .npy array: {exc}", "body"
        ) from None
    return flat.reshape(shape, order="F" if fortran else "C")


def _unsupported(accepted: list[str]) -> ApiError:
    got = request.mimetype or "none"
    return ApiError(
        415, "unsupported_media_type", f"expected Content-Type {' or '.join(accepted)}, got {got}"
    )


def body(
    model: type[BaseModel],
    *,
    csv: type[BaseModel] | None = None,
    npy: bool = False,
    upload: bool = False,
) -> Callable[[View], View]:
    """Pass the validated body to the view as ``payload``.

    With ``csv``, a table body is accepted too (CSV, tab-separated or Parquet):
    the view then gets a :class:`TableBody` whose ``params`` are the query
    string validated by ``csv``.
    With ``npy``, an ``application/x-npy`` body arrives as a :class:`NpyBody`
    (large numeric batches, which JSON would make slow to parse).
    With ``upload``, a table body is a dataset upload: it is copied to a temporary
    file (deleted when the view returns) under ``BACKPROP_MAX_UPLOAD_BYTES``, and
    the :class:`TableBody` holds that file's path instead of the bytes.
    """

    def decorate(view: View) -> View:
        contract = contract_of(view)
        contract.body, contract.csv_query, contract.npy = model, csv, npy
        contract.errors |= {400, 413, 415, 422}

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.mimetype == JSON:
                kwargs["payload"] = _validate(model, _read_json())
            elif csv is not None and request.mimetype in TABLES and upload:
                params = _validate(csv, request.args.to_dict())
                with tempfile.NamedTemporaryFile(prefix="backprop-upload-") as file:
                    _spool(file)
                    kwargs["payload"] = _read_table(params, Path(file.name))
                    return view(*args, **kwargs)
            elif csv is not None and request.mimetype in TABLES:
                kwargs["payload"] = _read_table(_validate(csv, request.args.to_dict()))
            elif npy and request.mimetype == NPY:
                kwargs["payload"] = NpyBody(_read_npy())
            else:
                accepted = (
                    [JSON] + (list(TABLES) if csv is not None else []) + ([NPY] if npy else [])
                )
                raise _unsupported(accepted)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def query(model: type[BaseModel]) -> Callable[[View], View]:
    """Pass the validated query string to the view as ``params``."""

    def decorate(view: View) -> View:
        contract = contract_of(view)
        contract.query = model
        contract.errors.add(422)

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["params"] = _validate(model, request.args.to_dict())
            return view(*args, **kwargs)

        return wrapper

    return decorate


def responds(
    status: int,
    model: type[BaseModel] | None = None,
    *,
    errors: tuple[int, ...] = (),
    headers: dict[str, str] | None = None,
    media: str | None = None,
) -> Callable[[View], Callable[..., Response]]:
    """Serialize the view's return value (a ``model``, optionally with headers) as JSON.

    ``errors`` lists the error statuses the view answers with on purpose, for the
    OpenAPI document; ``headers`` documents the response headers it sets.
    """

    def decorate(view: View) -> Callable[..., Response]:
        contract = contract_of(view)
        contract.status, contract.response, contract.media = status, model, media
        contract.errors |= set(errors)
        contract.headers.update(headers or {})

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            result = view(*args, **kwargs)
            if isinstance(result, Response):  # a view that chose another media type
                return result
            extra: dict[str, str] = {}
            if isinstance(result, tuple):
                result, extra = result
            if model is None:
                response = Response(status=status)
            else:
                response = jsonify(result.model_dump(mode="json"))
                response.status_code = status
            response.headers.update(extra)
            return response

        return wrapper

    return decorate
