"""Where stored bytes live: datasets' column files, checkpoints and model weights.

One small interface, :class:`ObjectStore`, with one backend per URL scheme
(``BACKPROP_STORAGE_URL``), as MLflow picks its artifact stores:

- ``file:///abs/folder``: a local folder, the embedded default. Every process
  that uses it must see the same folder (one host, or a shared mount).
- ``database://``: the service's own database (table ``objects``), so every host
  that reaches the database reaches the bytes.
- ``s3://bucket/prefix``: S3-compatible object storage through boto3. The
  endpoint and credentials come from boto3's usual environment variables
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...); ``?endpoint_url=`` in the
  URL overrides the endpoint.

Keys are paths relative to the store (``datasets/7.arrow``). Writes are atomic
per key: a reader sees the old object or the new one, never part of one. Nothing
outside ``store/`` reads or writes stored bytes; the query functions and
:mod:`store.files` are its callers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import StoredObject

log = logging.getLogger(__name__)


class ObjectMissing(KeyError):
    """No object is stored under the key."""


class ObjectStore(Protocol):
    """Bytes by key. Every method raises the backend's own error when the storage
    itself fails (an OSError, a database or boto3 error); reads of a missing key
    raise :class:`ObjectMissing`."""

    url: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there."""

    def put_file(self, key: str, path: Path, move: bool = False) -> None:
        """Store the file at ``path`` under ``key`` (streamed, not read into memory);
        with ``move``, the file may be taken rather than copied (it is the caller's
        temporary file)."""

    def get(self, key: str) -> bytes:
        """The object under ``key``."""

    def get_file(self, key: str, path: Path) -> None:
        """Write the object under ``key`` to ``path`` (streamed), atomically."""

    def local_path(self, key: str) -> Path | None:
        """The object's own file when the backend keeps it on this host's disk (it can
        be memory-mapped where it lies), else None."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix`` (none is fine)."""

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"not an object key: {key!r}")
    return key


class FileStore:
    """Objects as files under one folder; a write goes to a temporary file in the
    same folder and is renamed into place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = folder.as_uri()

    def _path(self, key: str) -> Path:
        return self.folder / _check_key(key)

    def _atomic(self, key: str, write: Callable[[Path], object]) -> None:
        _atomic_copy(write, self._path(key))

    def put(self, key: str, data: bytes) -> None:
        self._atomic(key, lambda p: p.write_bytes(data))

    def put_file(self, key: str, path: Path, move: bool = False) -> None:
        if move:
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # A rename on the same file system: atomic, and no copy of a large table.
                os.replace(path, target)
                return
            except OSError:
                pass  # another file system: copied below
        self._atomic(key, lambda p: shutil.copyfile(path, p))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectMissing(key)
        _atomic_copy(lambda p: shutil.copyfile(source, p), path)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def delete_prefix(self, prefix: str) -> None:
        for key in self.keys(prefix):
            self._path(key).unlink(missing_ok=True)
        # A write killed part way leaves its temporary file: it goes with the folder
        # it was written in (a job's checkpoints), never with one key of a shared folder.
        if prefix.endswith("/") and (self.folder / _check_key(prefix)).is_dir():
            for part in (self.folder / prefix).glob(".part-*"):
                part.unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> list[str]:
        if not self.folder.is_dir():
            return []
        found = (
            p.relative_to(self.folder).as_posix()
            for p in self.folder.rglob("*")
            if p.is_file() and not p.name.startswith(".part-")
        )
        return sorted(k for k in found if k.startswith(prefix))


def _atomic_copy(write: Callable[[Path], object], path: Path) -> None:
    """``write(temporary)`` next to ``path``, then the temporary file renamed to it: a
    reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    os.close(fd)
    try:
        write(Path(name))
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# Parts of an object in the database: one bytea/BLOB value stays well under
# PostgreSQL's 1 GB limit and the drivers' buffers.
PART_BYTES = 32 * 1024 * 1024


class DatabaseStore:
    """Objects as rows of the ``objects`` table, in parts of :data:`PART_BYTES`.

    Each write replaces the key's parts in one transaction of its own, so a
    reader never sees a mix of old and new parts.
    """

    def __init__(self, sessions: Callable[[], Any]) -> None:
        # ``sessions()`` opens a transaction: ``store.db.Session.begin``.
        self.sessions = sessions
        self.url = "database://"

    def put(self, key: str, data: bytes) -> None:
        self._write(
            key, (data[i : i + PART_BYTES] for i in range(0, max(len(data), 1), PART_BYTES))
        )

    def put_file(self, key: str, path: Path, move: bool = False) -> None:
        size = path.stat().st_size

        def parts() -> Any:
            with open(path, "rb") as file:
                # Reads of the part's own size: read(n) sets aside n bytes first.
                for start in range(0, max(size, 1), PART_BYTES):
                    yield file.read(min(PART_BYTES, size - start))

        self._write(key, parts())

    def _write(self, key: str, parts: Any) -> None:
        _check_key(key)
        session: Session
        with self.sessions() as session:
            session.execute(delete(StoredObject).where(StoredObject.key == key))
            for part, chunk in enumerate(parts):
                session.add(StoredObject(key=key, part=part, data=chunk))
                # One part at a time reaches the database, not the whole object.
                session.flush()
                session.expunge_all()

    def _parts(self, key: str) -> list[int]:
        with self.sessions() as session:
            found = session.scalars(
                select(StoredObject.part).where(StoredObject.key == key).order_by(StoredObject.part)
            )
            return list(found)

    def _read(self, key: str, part: int) -> bytes:
        with self.sessions() as session:
            data = session.scalar(
                select(StoredObject.data).where(StoredObject.key == key, StoredObject.part == part)
            )
        if data is None:
            raise ObjectMissing(key)  # replaced while being read: the caller may retry
        return bytes(data)

    def get(self, key: str) -> bytes:
        parts = self._parts(_check_key(key))
        if not parts:
            raise ObjectMissing(key)
        return b"".join(self._read(key, part) for part in parts)

    def get_file(self, key: str, path: Path) -> None:
        parts = self._parts(_check_key(key))
        if not parts:
            raise ObjectMissing(key)

        def write(target: Path) -> None:
            with open(target, "wb") as file:
                for part in parts:
                    file.write(self._read(key, part))

        _atomic_copy(write, path)

    def local_path(self, key: str) -> Path | None:
        return None

    def delete_prefix(self, prefix: str) -> None:
        with self.sessions() as session:
            session.execute(delete(StoredObject).where(_starts(prefix)))

    def keys(self, prefix: str = "") -> list[str]:
        with self.sessions() as session:
            found = session.scalars(select(func.distinct(StoredObject.key)).where(_starts(prefix)))
            # Sorted here: the database's collation need not order as Python does.
            return sorted(found)


def _starts(prefix: str) -> Any:
    # Not LIKE (startswith): `_` and `%` are wildcards there, and SQLite's LIKE ignores case.
    return func.substr(StoredObject.key, 1, len(prefix)) == prefix


class S3Store:
    """Objects in an S3 bucket under a prefix, through boto3 (which uploads and
    downloads large files in parts and retries on its own)."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        import boto3  # only this backend needs it

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _name(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def put_file(self, key: str, path: Path, move: bool = False) -> None:
        self.client.upload_file(str(path), self.bucket, self._name(key))

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.ClientError as exc:
            if self._missing(exc):
                raise ObjectMissing(key) from None
            raise
        return bytes(answer["Body"].read())

    def get_file(self, key: str, path: Path) -> None:
        def write(target: Path) -> None:
            try:
                self.client.download_file(self.bucket, self._name(key), str(target))
            except self.client.exceptions.ClientError as exc:
                if self._missing(exc):
                    raise ObjectMissing(key) from None
                raise

        _atomic_copy(write, path)

    def local_path(self, key: str) -> Path | None:
        return None

    def delete_prefix(self, prefix: str) -> None:
        keys = [self.prefix + k for k in self.keys(prefix)]
        for start in range(0, len(keys), 1000):  # the most one request deletes
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        found = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return sorted(k.removeprefix(self.prefix) for k in found)


def _file(url: str, sessions: Callable[[], Any]) -> ObjectStore:
    # Read by hand, not by urlsplit: the default is made from the data folder's own
    # path, where a '#' or '?' is part of a folder name.
    rest = url.removeprefix("file://")
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost"):
        raise ValueError("a file:// URL names a folder on this host (file:///abs/folder)")
    if not slash or not path:
        raise ValueError("a file:// URL needs an absolute folder (file:///abs/folder)")
    return FileStore(Path(unquote("/" + path)))


def _database(url: str, sessions: Callable[[], Any]) -> ObjectStore:
    if url.rstrip("/") != "database:":
        raise ValueError("the database backend takes no address: it is `database://`")
    return DatabaseStore(sessions)


def _s3(url: str, sessions: Callable[[], Any]) -> ObjectStore:
    parts = urlsplit(url)
    if not parts.netloc:
        raise ValueError("an s3:// URL names a bucket (s3://bucket/prefix)")
    endpoint = parse_qs(parts.query).get("endpoint_url", [None])[0]
    return S3Store(parts.netloc, parts.path, endpoint)


# URL scheme -> backend factory (url, sessions) -> store.
BACKENDS: dict[str, Callable[[str, Callable[[], Any]], ObjectStore]] = {
    "file": _file,
    "database": _database,
    "s3": _s3,
}


def check_url(url: str) -> str:
    """``url`` if a backend takes it, else ValueError saying why (for the settings)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in BACKENDS:
        raise ValueError(f"expected a URL starting {', '.join(s + '://' for s in BACKENDS)}")
    if scheme == "file":
        _file(url, lambda: None)
    elif scheme == "database":
        _database(url, lambda: None)
    elif not urlsplit(url).netloc:
        raise ValueError("an s3:// URL names a bucket (s3://bucket/prefix)")
    return url


def open_store(url: str, sessions: Callable[[], Any]) -> ObjectStore:
    """The backend for ``url``; ``sessions`` opens a database transaction (the
    database backend's connection: ``store.db.Session.begin``)."""
    return BACKENDS[url.split("://", 1)[0]](url, sessions)


class Storage:
    """The service's object store with what its callers need around it.

    - :meth:`stage` stores new bytes under a fresh key for a row to name, and
      deletes them again if the transaction that records the row fails, so a
      failed upload or write leaves no orphan object;
    - :meth:`cached` gives a local file of an object, by content digest, for
      memory-mapping (the object itself for the file backend, else a copy kept
      in ``cache``);
    - :meth:`discard` deletes objects whose rows are gone.
    """

    def __init__(self, objects: ObjectStore, cache: Path, cache_bytes: int = 10 * 2**30) -> None:
        self.objects = objects
        self.cache = cache
        self.cache_bytes = cache_bytes

    @contextmanager
    def stage(
        self, prefix: str, suffix: str, source: bytes | Path, *, move: bool = False
    ) -> Iterator[str]:
        """Store ``source`` under a new key ``<prefix>/<random><suffix>`` and yield the key.

        Open the transaction that records the key inside this block: when it (or
        anything else in the block) raises, the object is deleted and the error
        goes on. With ``move``, ``source`` is a temporary file the store may take
        instead of copying it.
        """
        key = f"{prefix.rstrip('/')}/{uuid.uuid4().hex}{suffix}"
        if isinstance(source, Path):
            self.objects.put_file(key, source, move=move)
        else:
            self.objects.put(key, source)
        try:
            yield key
        except GeneratorExit:
            # Closed without being exited (an ExitStack.pop_all() dropped): no failure,
            # the caller keeps the object.
            raise
        except BaseException:
            self.discard(key)
            raise

    def read(self, key: str) -> bytes:
        return self.objects.get(key)

    def cached(self, key: str, digest: str, suffix: str = "") -> Path:
        """A local file holding the object under ``key``, whose contents have the
        given ``digest``: the same digest is fetched once per host."""
        own = self.objects.local_path(key)
        if own is not None:
            return own
        path = self.cache / f"{digest}{suffix}"
        if not path.is_file():
            self.objects.get_file(key, path)
            self._prune(keep=path)
        else:
            os.utime(path)  # recently used: pruned last
        return path

    def _prune(self, keep: Path) -> None:
        """Least recently used copies out until the cache holds at most ``cache_bytes``
        (besides ``keep``). A copy that a job still has mapped stays readable: the
        mapping outlives the name."""
        files = []
        for path in self.cache.glob("*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # another process pruned it
            if path != keep and path.is_file() and not path.name.startswith(".part-"):
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files) + keep.stat().st_size
        for _, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def forget(self, digest: str) -> None:
        """Drop this host's cached copy of the contents with ``digest``."""
        for path in self.cache.glob(f"{digest}.*"):
            path.unlink(missing_ok=True)

    def discard(self, *keys_or_prefixes: str) -> None:
        """Delete objects after their rows are gone; a failure is logged, not raised
        (the rows are what the service trusts, an orphan object only costs space)."""
        for prefix in keys_or_prefixes:
            try:
                self.objects.delete_prefix(prefix)
            except Exception:
                log.exception("could not delete stored objects %s", prefix)
            # Copies cached by key (uploaded rows, outputs) go with their object.
            self.forget(hashlib.sha256(prefix.encode()).hexdigest())


_storage: Storage | None = None


def configure_storage(url: str, cache: Path, cache_bytes: int = 10 * 2**30) -> Storage:
    """Open the object store at ``url`` for this process (after ``store.configure``:
    the database backend uses its sessions); called once at process start."""
    global _storage
    from .db import Session

    _storage = Storage(open_store(url, Session.begin), cache, cache_bytes)
    return _storage


def storage() -> Storage:
    """This process's object store (see :func:`configure_storage`)."""
    if _storage is None:
        raise RuntimeError("store.objects.configure_storage() was not called")
    return _storage
