"""``GET /openapi.json``: an OpenAPI 3.1 document built from the app's own routes.

Every route's view carries the :class:`~api.contract.Contract` its decorators
recorded; the schemas come from pydantic, so the document describes exactly
what the code validates and returns.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel, RootModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from store import registry

from ..auth import PUBLIC_ENDPOINTS
from ..decorators import CSV, JSON, NPY, PARQUET, Contract, contract_of, responds
from ..schemas import DOC_MODELS, MAX_ID, ErrorOut

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
MEDIA_EXTENSION = "x-body-media-type"
PATH_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
ARGUMENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "int": {"type": "integer"},
    "registered": {"type": "string", "pattern": f"^{registry.NAME.pattern}$"},
    "alias": {"type": "string", "pattern": f"^{registry.ALIAS.pattern}$"},
}
# The first of each kind a new service makes, which is what its examples refer to.
ARGUMENT_EXAMPLES: dict[str, Any] = {"id": 1, "registered": "xor", "alias": "production"}


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


@bp.get("/openapi.json")
@responds(200, OpenApiDocument)
def openapi_json() -> OpenApiDocument:
    """This document."""
    cache = current_app.extensions.setdefault("backprop.openapi", {})
    if "document" not in cache:
        cache["document"] = build_document(current_app)
    return OpenApiDocument(cache["document"])


def _version() -> str:
    try:
        return metadata.version("backprop")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _routes(app: Flask) -> list[tuple[Rule, str, Contract, str]]:
    """(rule, method, contract, docstring) of every documented operation."""
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.startswith("ui."):
            continue  # pages for people, not part of the API
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule, method, contract_of(view), view.__doc__ or ""))
    return routes


def _schema_models(routes: list[tuple[Rule, str, Contract, str]]) -> list[Any]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
    for model in DOC_MODELS:
        wanted[(model, "validation")] = None
    for _, _, contract, _ in routes:
        for request_model in (contract.body, contract.csv_query, contract.query):
            if request_model is not None:
                wanted[(request_model, "validation")] = None
        if contract.response is not None:
            wanted[(contract.response, "serialization")] = None
    return list(wanted)


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for converter, name in PATH_ARGUMENT.findall(rule.rule):
        schema = ARGUMENT_SCHEMAS.get(converter, {"type": "string"})
        parameter = {"name": name, "in": "path", "required": True, "schema": schema}
        if converter in ARGUMENT_EXAMPLES:
            parameter["example"] = ARGUMENT_EXAMPLES[converter]
        parameters.append(parameter)
    return PATH_ARGUMENT.sub(r"{\2}", rule.rule), parameters


def _query_parameters(schema: dict[str, Any], media: str | None = None) -> list[dict[str, Any]]:
    """Parameters from a query model; with ``media``, they go only with a body of that type."""
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        examples = prop.pop("examples", None)
        if media:
            note = f"Required with a {media} body." if name in required else f"With a {media} body."
            description = f"{description} {note}" if description else note
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required and media is None,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        if examples:
            parameter["example"] = examples[0]
        if media:
            # Read by /docs and its test to send the parameter only with that body.
            parameter[MEDIA_EXTENSION] = media
        parameters.append(parameter)
    return parameters


def _example_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The media type's ``example``: the first of the model's own examples, if any."""
    examples = schema.get("examples")
    return {"example": examples[0]} if examples else {}


def _error_response(status: int, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase, "content": {JSON: {"schema": schema}}}


def build_document(app: Flask) -> dict[str, Any]:
    routes = _routes(app)
    refs, top = models_json_schema(_schema_models(routes), ref_template=REF)
    definitions: dict[str, dict[str, Any]] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    def definition(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        return definitions[ref(model, mode)["$ref"].rsplit("/", 1)[1]]

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, contract, doc in routes:
        path, parameters = _path(rule)
        if contract.query is not None:
            parameters += _query_parameters(definition(contract.query))
        if contract.csv_query is not None:
            parameters += _query_parameters(definition(contract.csv_query), CSV)
        operation: dict[str, Any] = {
            "operationId": rule.endpoint.replace(".", "_"),
            "summary": doc.strip().splitlines()[0] if doc.strip() else rule.endpoint,
            "tags": [rule.endpoint.split(".")[0]],
        }
        if parameters:
            operation["parameters"] = parameters
        if contract.body is not None:
            content = {
                JSON: {
                    "schema": ref(contract.body, "validation"),
                    **_example_of(definition(contract.body)),
                }
            }
            if contract.csv_query is not None:
                csv_example = getattr(contract.csv_query, "body_example", None)
                content[CSV] = {"schema": {"type": "string"}}
                if csv_example is not None:
                    content[CSV]["example"] = csv_example
                content[PARQUET] = {"schema": {"type": "string", "format": "binary"}}
            if contract.npy:
                content[NPY] = {"schema": {"type": "string", "format": "binary"}}
            operation["requestBody"] = {"required": True, "content": content}

        success: dict[str, Any] = {"description": HTTPStatus(contract.status).phrase}
        if contract.response is not None:
            schema = ref(contract.response, "serialization")
            example = _example_of(definition(contract.response, "serialization"))
            success["content"] = {JSON: {"schema": schema, **example}}
        elif contract.media is not None:
            success["content"] = {contract.media: {"schema": {"type": "string"}}}
        if contract.headers:
            success["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in contract.headers.items()
            }
        responses = {str(contract.status): success}
        errors = set(contract.errors) | {500}
        if rule.endpoint not in PUBLIC_ENDPOINTS:
            operation["security"] = [{"apiKey": []}]
            # 503: the database or the broker does not answer (with Retry-After).
            errors.update((401, 503))
        if parameters and any(p["in"] == "path" for p in parameters):
            errors.add(404)
        for status in sorted(errors):
            responses[str(status)] = _error_response(status, ref(ErrorOut, "serialization"))
        operation["responses"] = responses
        paths.setdefault(path, {})[method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "backprop",
            "version": _version(),
            "description": "Train neural networks by backpropagation and serve predictions. "
            'Every error answers {"error": {"code", "message", "field"?}}.',
        },
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `backprop keys create --owner NAME`.",
                }
            },
        },
    }
