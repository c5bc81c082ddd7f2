"""The model registry (MLflow's terms): an owner's registered models, each a name over
numbered versions of trained models, and aliases that point at one version each.

Query functions take a session and leave committing to the caller. A model may be
registered under several names and versions; it cannot be deleted while a version
points at it (``queries.delete_model`` refuses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import ModelAlias, ModelVersion, RegisteredModel, TrainedModel, utcnow

# MLflow's rules: names of letters, digits and ``_.-`` (ours start with a letter or a
# digit, so that a name never looks like an option or a path); alias names of letters,
# digits, ``_`` and ``-``, never ``latest`` nor ``v<digits>``, which name versions.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
ALIAS = re.compile(r"[A-Za-z0-9_\-]{1,100}")
RESERVED_ALIAS = re.compile(r"latest|v\d+", re.IGNORECASE)
LATEST = "latest"
# Version numbers are `integer` columns.
MAX_VERSION = 2**31 - 1


class RegistryError(Exception):
    """A registry operation that cannot be done as asked: ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a registered model, or None if it can."""
    if NAME.fullmatch(name):
        return None
    return (
        "a registered model's name has 1 to 200 letters, digits, '_', '.' or '-', "
        "and starts with a letter or a digit"
    )


def alias_problem(alias: str) -> str | None:
    """Why ``alias`` cannot be an alias, or None if it can."""
    if not ALIAS.fullmatch(alias):
        return "an alias has 1 to 100 letters, digits, '_' or '-'"
    if RESERVED_ALIAS.fullmatch(alias):
        return f"{alias!r} is reserved: 'latest' and 'v<number>' name versions"
    return None


@dataclass(frozen=True)
class Resolved:
    """What a reference to a registered model's version comes to."""

    name: str
    version: int
    model_id: int


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def get_registered(
    session: Session, name: str, *, owner: str, lock: bool = False
) -> RegisteredModel | None:
    if name_problem(name) is not None:
        return None  # never made, and PostgreSQL refuses some such text (a NUL) outright
    query = select(RegisteredModel).where(
        RegisteredModel.owner == owner, RegisteredModel.name == name
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def register_version(
    session: Session, owner: str, name: str, model: TrainedModel, description: str | None = None
) -> tuple[RegisteredModel, ModelVersion]:
    """Make ``model`` the next version of the owner's registered model ``name``, creating
    the registered model with its first version.

    Numbers are given by one atomic increment of the registered model's
    ``last_version``: on PostgreSQL the update holds the row's lock until the commit,
    so concurrent registrations under one name take 1, 2, 3... one after the other
    (SQLite has one writer at a time). The caller checks the name
    (:func:`name_problem`) and that the model is the owner's.
    """
    now = utcnow()
    session.execute(
        _insert(session)(RegisteredModel)
        .values(owner=owner, name=name, last_version=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["owner", "name"])
    )
    number = session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.owner == owner, RegisteredModel.name == name)
        .values(last_version=RegisteredModel.last_version + 1, updated_at=now)
        .returning(RegisteredModel.id, RegisteredModel.last_version)
    ).one()
    version = ModelVersion(
        registered_model_id=number[0],
        version=number[1],
        model_id=model.id,
        description=description,
        created_at=now,
    )
    session.add(version)
    session.flush()
    registered = get_registered(session, name, owner=owner)
    assert registered is not None
    session.refresh(registered)
    return registered, version


def list_registered(
    session: Session, *, owner: str, after: int | None = None, limit: int = 50
) -> list[RegisteredModel]:
    """The owner's registered models, newest first; ``after`` is the last id of the
    previous page."""
    query = (
        select(RegisteredModel)
        .where(RegisteredModel.owner == owner)
        .order_by(RegisteredModel.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(RegisteredModel.id < after)
    return list(session.scalars(query))


def versions(session: Session, registered: RegisteredModel) -> list[ModelVersion]:
    """Its versions, newest first."""
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.registered_model_id == registered.id)
            .order_by(ModelVersion.version.desc())
        )
    )


def latest_version(session: Session, registered: RegisteredModel) -> int | None:
    """The highest version it still has, or None when it has none."""
    return session.scalar(
        select(func.max(ModelVersion.version)).where(
            ModelVersion.registered_model_id == registered.id
        )
    )


def aliases(session: Session, registered: RegisteredModel) -> dict[str, int]:
    """Alias -> version, in the aliases' order."""
    rows = session.execute(
        select(ModelAlias.alias, ModelAlias.version)
        .where(ModelAlias.registered_model_id == registered.id)
        .order_by(ModelAlias.alias)
    )
    return {alias: version for alias, version in rows}


def get_version(session: Session, registered: RegisteredModel, number: int) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.registered_model_id == registered.id, ModelVersion.version == number
        )
    ).one_or_none()


def resolve(
    session: Session, name: str, *, owner: str, version: int | None = None, alias: str | None = None
) -> Resolved:
    """The model that version ``version``, or alias ``alias``, of the owner's registered
    model ``name`` stands for, read now (an alias moved by any process counts at once).

    The alias ``latest`` is the highest version; ``v<n>`` is version n. Raises
    :class:`LookupError` with a message naming what is missing.
    """
    registered = get_registered(session, name, owner=owner)
    if registered is None:
        raise LookupError(f"no registered model named {name!r}")
    if alias is not None:
        if alias.lower() == LATEST:
            version = latest_version(session, registered)
            if version is None:
                raise LookupError(f"registered model {name!r} has no versions")
        elif RESERVED_ALIAS.fullmatch(alias):
            version = int(alias[1:])
            if version > MAX_VERSION:
                raise LookupError(f"registered model {name!r} has no version {version}")
        else:
            version = (
                None
                if ALIAS.fullmatch(alias) is None
                else session.scalar(
                    select(ModelAlias.version).where(
                        ModelAlias.registered_model_id == registered.id, ModelAlias.alias == alias
                    )
                )
            )
            if version is None:
                raise LookupError(f"registered model {name!r} has no alias {alias!r}")
    assert version is not None
    found = get_version(session, registered, version)
    if found is None:
        raise LookupError(f"registered model {name!r} has no version {version}")
    return Resolved(name, version, found.model_id)


def set_alias(session: Session, registered: RegisteredModel, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (which must exist: :class:`LookupError`), creating
    the alias or moving it. The caller checks the alias's name (:func:`alias_problem`)."""
    if get_version(session, registered, version) is None:
        raise LookupError(f"registered model {registered.name!r} has no version {version}")
    now = utcnow()
    statement = _insert(session)(ModelAlias).values(
        registered_model_id=registered.id, alias=alias, version=version, updated_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["registered_model_id", "alias"],
            set_={"version": version, "updated_at": now},
        )
    )
    registered.updated_at = now


def delete_alias(session: Session, registered: RegisteredModel, alias: str) -> bool:
    """Remove the alias; False if there was none."""
    if ALIAS.fullmatch(alias) is None:
        return False
    result = session.execute(
        delete(ModelAlias).where(
            ModelAlias.registered_model_id == registered.id, ModelAlias.alias == alias
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delete_version(session: Session, registered: RegisteredModel, version: ModelVersion) -> None:
    """Delete the version and, as MLflow does, the aliases pointing at it (an alias with
    nothing behind it would only fail later). Its trained model stays; its number is
    not given again."""
    session.execute(
        delete(ModelAlias).where(
            ModelAlias.registered_model_id == registered.id,
            ModelAlias.version == version.version,
        )
    )
    session.delete(version)
    registered.updated_at = utcnow()


def delete_registered(session: Session, registered: RegisteredModel) -> None:
    """Delete the registered model with its versions and aliases; the trained models stay."""
    session.execute(delete(ModelAlias).where(ModelAlias.registered_model_id == registered.id))
    session.execute(delete(ModelVersion).where(ModelVersion.registered_model_id == registered.id))
    session.delete(registered)


def registrations(session: Session, model_id: int) -> list[tuple[str, int]]:
    """(registered model's name, version) of every version that points at the model."""
    rows = session.execute(
        select(RegisteredModel.name, ModelVersion.version)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.registered_model_id)
        .where(ModelVersion.model_id == model_id)
        .order_by(RegisteredModel.name, ModelVersion.version)
    )
    return [(name, version) for name, version in rows]
