"""/registered-models: the model registry in MLflow's terms.

A registered model is a name of the caller's under which trained models are kept as
numbered versions (1, 2, ...; a deleted version's number is never given again), and
aliases (``production``, ``staging``) point at one version each. Predictions through
``<name>@<alias>`` or ``<name>/versions/<n>`` answer exactly as
``POST /models/<id>/predict`` does, with the model and version that answered in the
``X-Model-Id`` and ``X-Model-Version`` headers. The alias is read from the database
on every request, so moving it takes effect at once on every API process.

``<name>@latest`` is the highest version and ``<name>@v<n>`` version n, as in MLflow;
neither can be set as an alias.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from werkzeug.routing import BaseConverter

from store import ModelVersion, RegisteredModel, Session
from store import queries as q
from store import registry as r

from ..auth import owner
from ..decorators import NpyBody, TableBody, body, query, responds
from ..errors import ApiError, invalid, not_found
from ..schemas import (
    AliasSet,
    ModelVersionOut,
    PageQuery,
    PredictCsvQuery,
    PredictOut,
    PredictRequest,
    RegisteredModelDetail,
    RegisteredModelList,
    RegisteredModelOut,
    VersionCreate,
)
from .models import predict_with
from .rows import one_page

bp = Blueprint("registry", __name__, url_prefix="/registered-models")

ANSWERED_BY = {
    "X-Model-Id": "The id of the trained model that answered.",
    "X-Model-Version": "The version of the registered model that answered.",
}


class NameConverter(BaseConverter):
    """A registered model's name in a path: anything up to a ``/`` or an ``@`` (which
    starts an alias). Its spelling is judged by the view, so that a bad one is a 422
    naming ``name`` where a name is made, and a 404 where one is looked up."""

    regex = "[^/@]+"


class AliasConverter(BaseConverter):
    """An alias in a path (judged by the view, as names are)."""

    regex = "[^/]+"


@bp.record_once
def _add_converters(setup: BlueprintSetupState) -> None:
    # recorded before the routes below, so the app knows the converters before their rules
    setup.app.url_map.converters.update(registered=NameConverter, alias=AliasConverter)


def missing(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _registered(session: OrmSession, name: str, *, lock: bool = False) -> RegisteredModel:
    found = r.get_registered(session, name, owner=owner(), lock=lock)
    if found is None:
        raise missing(f"no registered model named {name!r}")
    return found


def _version_out(
    registered: RegisteredModel, version: ModelVersion, aliases: dict[str, int]
) -> ModelVersionOut:
    return ModelVersionOut(
        name=registered.name,
        version=version.version,
        model_id=version.model_id,
        description=version.description,
        aliases=[alias for alias, number in aliases.items() if number == version.version],
        created_at=version.created_at,
    )


def _registered_fields(session: OrmSession, registered: RegisteredModel) -> dict[str, Any]:
    return {
        "id": registered.id,
        "name": registered.name,
        "description": registered.description,
        "latest_version": r.latest_version(session, registered),
        "aliases": r.aliases(session, registered),
        "created_at": registered.created_at,
        "updated_at": registered.updated_at,
    }


def _detail(session: OrmSession, registered: RegisteredModel) -> RegisteredModelDetail:
    fields = _registered_fields(session, registered)
    versions = [
        _version_out(registered, version, fields["aliases"])
        for version in r.versions(session, registered)
    ]
    return RegisteredModelDetail(**fields, versions=versions)


@bp.post("/<registered:name>/versions")
@body(VersionCreate)
@responds(201, ModelVersionOut, errors=(404,), headers={"Location": "URL of the new version"})
def create_version(name: str, payload: VersionCreate) -> tuple[ModelVersionOut, dict[str, str]]:
    """Register the caller's model as the next version of ``name`` (1 for a new name,
    which creates the registered model).

    Names have 1 to 200 letters, digits, ``_``, ``.`` or ``-`` and start with a letter
    or a digit (a 422 naming ``name`` otherwise). A model may be registered more than
    once; it cannot be deleted while a version points at it.
    """
    problem = r.name_problem(name)
    if problem is not None:
        raise invalid("name", problem)
    try:
        with Session.begin() as session:
            model = q.get_model(session, payload.model_id, owner=owner())
            if model is None:
                raise not_found("model", payload.model_id)
            registered, version = r.register_version(
                session, owner(), name, model, payload.description
            )
            out = _version_out(registered, version, {})
    except IntegrityError:
        # the model was deleted by a request that committed between the check and here
        raise not_found("model", payload.model_id) from None
    return out, {"Location": f"/registered-models/{name}/versions/{out.version}"}


@bp.get("")
@query(PageQuery)
@responds(200, RegisteredModelList)
def list_registered(params: PageQuery) -> RegisteredModelList:
    """The caller's registered models, newest first, with their latest version and
    aliases; `next_after` is the next page's cursor."""
    with Session.begin() as session:
        rows = r.list_registered(session, owner=owner(), after=params.after, limit=params.limit + 1)
        page, next_after = one_page(
            rows,
            params.limit,
            lambda row: RegisteredModelOut(**_registered_fields(session, row)),
        )
    return RegisteredModelList(registered_models=page, next_after=next_after)


@bp.get("/<registered:name>")
@responds(200, RegisteredModelDetail, errors=(404,))
def get_registered(name: str) -> RegisteredModelDetail:
    """A registered model with its versions (newest first) and aliases."""
    with Session.begin() as session:
        return _detail(session, _registered(session, name))


@bp.get("/<registered:name>/versions/<id:version>")
@responds(200, ModelVersionOut, errors=(404,))
def get_version(name: str, version: int) -> ModelVersionOut:
    """One version: its model, description and aliases."""
    with Session.begin() as session:
        registered = _registered(session, name)
        found = r.get_version(session, registered, version)
        if found is None:
            raise missing(f"registered model {name!r} has no version {version}")
        return _version_out(registered, found, r.aliases(session, registered))


@bp.get("/<registered:name>@<alias:alias>")
@responds(200, ModelVersionOut, errors=(404,))
def get_alias(name: str, alias: str) -> ModelVersionOut:
    """The version an alias points at (``latest``: the highest version)."""
    with Session.begin() as session:
        registered = _registered(session, name)
        try:
            resolved = r.resolve(session, name, owner=owner(), alias=alias)
        except LookupError as exc:
            raise missing(str(exc)) from None
        found = r.get_version(session, registered, resolved.version)
        assert found is not None
        return _version_out(registered, found, r.aliases(session, registered))


@bp.delete("/<registered:name>/versions/<id:version>")
@responds(204, errors=(404,))
def delete_version(name: str, version: int) -> None:
    """Delete a version, and the aliases pointing at it (as MLflow does). Its trained
    model stays; its number is not given again."""
    with Session.begin() as session:
        registered = _registered(session, name, lock=True)
        found = r.get_version(session, registered, version)
        if found is None:
            raise missing(f"registered model {name!r} has no version {version}")
        r.delete_version(session, registered, found)


@bp.delete("/<registered:name>")
@responds(204, errors=(404,))
def delete_registered(name: str) -> None:
    """Delete a registered model with its versions and aliases; its trained models stay."""
    with Session.begin() as session:
        r.delete_registered(session, _registered(session, name, lock=True))


@bp.put("/<registered:name>/aliases/<alias:alias>")
@body(AliasSet)
@responds(200, RegisteredModelDetail, errors=(404,))
def set_alias(name: str, alias: str, payload: AliasSet) -> RegisteredModelDetail:
    """Point an alias at a version, creating the alias or moving it; the next request
    through ``<name>@<alias>`` on any API process gets that version.

    Aliases have 1 to 100 letters, digits, ``_`` or ``-``, and are neither ``latest``
    nor ``v<number>`` (a 422 naming ``alias``)."""
    problem = r.alias_problem(alias)
    if problem is not None:
        raise invalid("alias", problem)
    with Session.begin() as session:
        registered = _registered(session, name, lock=True)
        try:
            r.set_alias(session, registered, alias, payload.version)
        except LookupError as exc:
            raise missing(str(exc)) from None
        return _detail(session, registered)


@bp.delete("/<registered:name>/aliases/<alias:alias>")
@responds(204, errors=(404,))
def delete_alias(name: str, alias: str) -> None:
    """Remove an alias; its version stays."""
    with Session.begin() as session:
        registered = _registered(session, name, lock=True)
        if not r.delete_alias(session, registered, alias):
            raise missing(f"registered model {name!r} has no alias {alias!r}")


def _predict(
    name: str,
    payload: PredictRequest | TableBody | NpyBody,
    *,
    version: int | None = None,
    alias: str | None = None,
) -> tuple[PredictOut, dict[str, str]] | Response:
    with Session.begin() as session:
        try:
            resolved = r.resolve(session, name, owner=owner(), version=version, alias=alias)
        except LookupError as exc:
            raise missing(str(exc)) from None
    answer = predict_with(resolved.model_id, payload)
    headers = {"X-Model-Id": str(resolved.model_id), "X-Model-Version": str(resolved.version)}
    if isinstance(answer, Response):
        answer.headers.update(headers)
        return answer
    return answer, headers


@bp.post("/<registered:name>@<alias:alias>/predict")
@body(PredictRequest, csv=PredictCsvQuery, npy=True)
@responds(200, PredictOut, errors=(400, 404, 409), headers=ANSWERED_BY)
def predict_alias(
    name: str, alias: str, payload: PredictRequest | TableBody | NpyBody
) -> tuple[PredictOut, dict[str, str]] | Response:
    """Predict with the version the alias points at now: bodies and answers as
    ``POST /models/<id>/predict``."""
    return _predict(name, payload, alias=alias)


@bp.post("/<registered:name>/versions/<id:version>/predict")
@body(PredictRequest, csv=PredictCsvQuery, npy=True)
@responds(200, PredictOut, errors=(400, 404, 409), headers=ANSWERED_BY)
def predict_version(
    name: str, version: int, payload: PredictRequest | TableBody | NpyBody
) -> tuple[PredictOut, dict[str, str]] | Response:
    """Predict with one version: bodies and answers as ``POST /models/<id>/predict``."""
    return _predict(name, payload, version=version)
