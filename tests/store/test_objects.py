"""The storage seam (store/objects.py) for real, on every backend.

Each test runs on a local folder (FileStore), on the database backend over a fresh
SQLite file and over this run's own PostgreSQL database, and on the S3 backend.
No S3 server runs on these machines, so the tests start moto's S3-compatible
server (``moto.server.ThreadedMotoServer``, see conftest) and talk to it over
HTTP through boto3, as the service would talk to S3 or MinIO.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

import core
import store.objects
from core.frame import Column, Frame
from store import Dataset, Session, storage
from store import queries as q
from store.db import _engines, engine_for
from store.migrate import upgrade
from store.models import StoredObject
from store.objects import (
    DatabaseStore,
    FileStore,
    ObjectMissing,
    ObjectStore,
    S3Store,
    Storage,
    check_url,
    open_store,
)
from store.settings import Settings, SettingsError, load_settings
from tests.service.api_helpers import XOR, client_for, post_dataset
from worker.frames import SUFFIX, read_frame, write_frame

from .conftest import BUCKET

BACKENDS = ["file", "sqlite", "postgres", "s3"]


def sessions_for(url: str) -> Any:
    """What the database backend is given: a callable opening a transaction."""
    return sessionmaker(bind=engine_for(url), expire_on_commit=False).begin


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite file with the service's tables, for this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'objects.db'}"
    upgrade(url)
    yield url
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """An empty store of each backend, opened from its URL as the service opens it."""
    if request.param == "file":
        url, sessions = (tmp_path / "objects").as_uri(), None
    elif request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        # A prefix of its own per test: the bucket outlives the test.
        url, sessions = f"s3://{BUCKET}/run-{uuid.uuid4().hex}?endpoint_url={endpoint}", None
    else:
        database = request.getfixturevalue(f"{request.param}_url")
        url, sessions = "database://", sessions_for(database)
    found = open_store(check_url(url), sessions)
    assert found.keys() == []
    yield found
    found.delete_prefix("")


def part_count(objects: ObjectStore, key: str) -> int | None:
    """How many rows hold ``key`` (the database backend), else None."""
    if not isinstance(objects, DatabaseStore):
        return None
    with objects.sessions() as session:
        count: int = session.scalar(
            select(func.count()).select_from(StoredObject).where(StoredObject.key == key)
        )
        return count


def no_partial_files(folder: Path) -> bool:
    return not any(p.name.startswith(".part-") for p in folder.rglob("*"))


# --- the ObjectStore interface ----------------------------------------------------------


def test_each_backend_is_the_one_its_url_names(objects: ObjectStore) -> None:
    kinds = {"file": FileStore, "database": DatabaseStore, "s3": S3Store}
    assert isinstance(objects, kinds[objects.url.split("://")[0]])


def test_bytes_round_trip_and_replace(objects: ObjectStore) -> None:
    data = bytes(range(256)) * 3
    objects.put("datasets/a.arrow", data)
    assert objects.get("datasets/a.arrow") == data
    objects.put("datasets/a.arrow", b"newer")
    assert objects.get("datasets/a.arrow") == b"newer"
    objects.put("models/empty.npz", b"")
    assert objects.get("models/empty.npz") == b""
    assert objects.keys() == ["datasets/a.arrow", "models/empty.npz"]


def test_files_round_trip(objects: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00\xffcolumns" * 1000)
    objects.put_file("datasets/b.arrow", source)
    target = tmp_path / "out" / "deep" / "b.arrow"  # folders made as needed
    objects.get_file("datasets/b.arrow", target)
    assert target.read_bytes() == source.read_bytes()
    # get_file replaces what is at the target
    objects.put("datasets/b.arrow", b"second")
    objects.get_file("datasets/b.arrow", target)
    assert target.read_bytes() == b"second"
    assert no_partial_files(tmp_path / "out")


def test_a_missing_key_is_object_missing(objects: ObjectStore, tmp_path: Path) -> None:
    objects.put("datasets/here.arrow", b"x")
    with pytest.raises(ObjectMissing):
        objects.get("datasets/absent.arrow")
    target = tmp_path / "out" / "absent.arrow"
    with pytest.raises(ObjectMissing):
        objects.get_file("datasets/absent.arrow", target)
    assert not target.exists() and no_partial_files(tmp_path / "out")
    assert objects.local_path("datasets/absent.arrow") is None
    objects.delete_prefix("datasets/absent")  # nothing to delete is fine
    assert objects.keys() == ["datasets/here.arrow"]


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "datasets/../../x"])
def test_keys_outside_the_store_are_refused(objects: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="not an object key"):
        objects.put(key, b"x")
    with pytest.raises(ValueError, match="not an object key"):
        objects.get(key)


def test_objects_larger_than_one_database_part(
    objects: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store.objects, "PART_BYTES", 1000)
    rng = np.random.default_rng(0)
    data = rng.bytes(2500)
    objects.put("models/big.npz", data)
    assert objects.get("models/big.npz") == data
    assert part_count(objects, "models/big.npz") in (None, 3)

    exact = tmp_path / "exact.bin"  # a whole number of parts: no empty last part
    exact.write_bytes(rng.bytes(3000))
    objects.put_file("datasets/exact.arrow", exact)
    assert part_count(objects, "datasets/exact.arrow") in (None, 3)
    objects.get_file("datasets/exact.arrow", tmp_path / "back.arrow")
    assert (tmp_path / "back.arrow").read_bytes() == exact.read_bytes()

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    objects.put_file("datasets/empty.arrow", empty)
    assert objects.get("datasets/empty.arrow") == b""

    # A smaller object in its place leaves none of the old parts behind.
    objects.put("models/big.npz", b"small")
    assert objects.get("models/big.npz") == b"small"
    assert part_count(objects, "models/big.npz") in (None, 1)


def test_keys_and_delete_prefix_match_prefixes_exactly(objects: ObjectStore) -> None:
    keys = [
        "checkpoints/1/a.npz",
        "checkpoints/1/b.npz",
        "checkpoints/10/c.npz",
        "datasets/a_b.arrow",
        "datasets/aXb.arrow",
        "datasets/100%.arrow",
        "datasets/1000.arrow",
        "Models/upper.npz",
        "models/lower.npz",
    ]
    for key in keys:
        objects.put(key, key.encode())
    assert objects.keys() == sorted(keys)
    assert objects.keys("checkpoints/1/") == ["checkpoints/1/a.npz", "checkpoints/1/b.npz"]
    # No wildcards and no case folding: a prefix is the key's first characters.
    assert objects.keys("datasets/a_") == ["datasets/a_b.arrow"]
    assert objects.keys("datasets/100%") == ["datasets/100%.arrow"]
    assert objects.keys("models/") == ["models/lower.npz"]

    objects.delete_prefix("checkpoints/1/")
    objects.delete_prefix("datasets/a_")
    objects.delete_prefix("datasets/100%")
    objects.delete_prefix("Models/")
    assert objects.keys() == [
        "checkpoints/10/c.npz",
        "datasets/1000.arrow",
        "datasets/aXb.arrow",
        "models/lower.npz",
    ]
    objects.delete_prefix("models/lower.npz")  # a whole key is a prefix of itself
    assert objects.keys("models/") == []
    with pytest.raises(ObjectMissing):
        objects.get("checkpoints/1/a.npz")
    assert objects.get("checkpoints/10/c.npz") == b"checkpoints/10/c.npz"


# --- the service's own objects through Storage ------------------------------------------


def dataset_frame() -> Frame:
    rng = np.random.default_rng(1)
    n = 64
    x = rng.normal(size=n)
    x[[3, 17]] = np.nan
    labels: list[str | None] = [["red", "green", "blue"][i % 3] for i in range(n)]
    labels[5] = None  # the missing code
    return Frame(
        [
            Column.number("x", x),
            Column.category("colour", labels),
            Column.number("y", rng.normal(size=n)),
        ]
    )


def mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process, if any (Linux)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(a, 16) for a in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) == 6 else None
    return None


def test_a_dataset_round_trips_and_is_memory_mapped(objects: ObjectStore, tmp_path: Path) -> None:
    storage = Storage(objects, tmp_path / "cache")
    frame = dataset_frame()
    path = tmp_path / f"upload{SUFFIX}"
    write_frame(frame, path)
    with storage.stage("datasets", SUFFIX, path) as key:
        pass
    assert key.startswith("datasets/") and key.endswith(SUFFIX)
    assert objects.keys("datasets/") == [key]

    local = storage.cached(key, frame.sha256(), SUFFIX)
    back = read_frame(local)
    assert back.names == frame.names
    for want, got in zip(frame, back, strict=True):
        assert (got.kind, got.categories, got.values.dtype) == (
            want.kind,
            want.categories,
            want.values.dtype,
        )
        np.testing.assert_array_equal(got.values, want.values)  # NaN equal to NaN
        assert not got.values.flags.writeable
        # Every column is a view of the mapped file, not a copy in memory.
        assert mapped_file(got.values.ctypes.data) == str(local)
    assert back.sha256() == frame.sha256()
    assert back["colour"].labels()[5] is None

    if isinstance(objects, FileStore):
        assert local == objects.folder / key  # the stored file itself
        assert not (tmp_path / "cache").exists()
    else:
        assert local == tmp_path / "cache" / f"{frame.sha256()}{SUFFIX}"
        # Fetched once per digest: the cached copy serves without the store.
        objects.delete_prefix(key)
        assert storage.cached(key, frame.sha256(), SUFFIX) == local
        assert read_frame(local).sha256() == frame.sha256()


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    return x, np.eye(2)[(x[:, 0] + x[:, 1] > 0).astype(int)]


NETWORK = {
    "input_dim": 3,
    "layers": [{"units": 5, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
}
TRAINING = {"epochs": 6, "batch_size": 8, "optimizer": {"name": "adam", "learning_rate": 0.05}}


def epoch_key(stats: core.EpochStats) -> tuple[Any, ...]:
    return (stats.epoch, stats.loss, stats.learning_rate, stats.grad_norm)


def test_a_checkpoint_round_trips(objects: ObjectStore, tmp_path: Path) -> None:
    storage = Storage(objects, tmp_path / "cache")
    x, t = training_data()
    whole: list[core.EpochStats] = []
    core.Trainer(NETWORK, TRAINING, x, t).run(on_epoch=whole.append)

    trainer = core.Trainer(NETWORK, TRAINING, x, t)
    saved: list[bytes] = []

    def on_epoch(stats: core.EpochStats) -> None:
        if stats.epoch == 3:  # as the worker checkpoints, between epochs
            saved.append(trainer.checkpoint())

    trainer.run(on_epoch=on_epoch, should_stop=lambda: bool(saved))
    # The worker's own prefix (it ends with "/").
    with storage.stage(q.checkpoint_prefix(7), ".npz", saved[0]) as key:
        pass
    assert objects.keys("checkpoints/7/") == [key]

    after: list[core.EpochStats] = []
    resumed = core.Trainer.resume(storage.read(key), x.copy(), t.copy())
    assert resumed.epoch == 3
    resumed.run(on_epoch=after.append)
    assert [epoch_key(s) for s in after] == [epoch_key(s) for s in whole[3:]]


def test_model_weights_round_trip(objects: ObjectStore, tmp_path: Path) -> None:
    storage = Storage(objects, tmp_path / "cache")
    x, t = training_data()
    model = core.Trainer(NETWORK, TRAINING, x, t).run().model
    assert model is not None
    with storage.stage("models", ".npz", model.to_bytes()) as key:
        pass
    back = core.Model.from_bytes(storage.read(key))
    assert np.array_equal(back.predict(x), model.predict(x))


# --- stage and discard ---------------------------------------------------------------


class Rollback(Exception):
    pass


@pytest.mark.parametrize("source", ["bytes", "file"])
def test_stage_keeps_the_object_unless_the_block_raises(
    objects: ObjectStore, tmp_path: Path, source: str
) -> None:
    storage = Storage(objects, tmp_path / "cache")
    path = tmp_path / "data.bin"
    path.write_bytes(b"staged bytes")
    data: bytes | Path = path if source == "file" else path.read_bytes()

    with storage.stage("datasets", ".arrow", data) as kept:
        assert objects.get(kept) == b"staged bytes"  # stored before the block runs
    assert objects.keys() == [kept]

    failed = []
    with pytest.raises(Rollback), storage.stage("datasets", ".arrow", data) as key:
        failed.append(key)
        assert objects.get(key) == b"staged bytes"
        raise Rollback  # the transaction naming the key did not commit
    assert failed[0] != kept
    assert objects.keys() == [kept]

    # As the upload code stages: the ExitStack entered before the transaction.
    with pytest.raises(Rollback), ExitStack() as staged:
        key = staged.enter_context(storage.stage("models", ".npz", data))
        failed.append(key)
        raise Rollback
    assert objects.keys() == [kept]


def test_stage_keeps_an_object_whose_exit_stack_was_popped(
    objects: ObjectStore, tmp_path: Path
) -> None:
    """tests/service/api_helpers.store_arrays keeps a staged object with ExitStack.pop_all()
    and drops the popped stack: the staged generator is closed (GeneratorExit), which is
    no failure of the block."""
    storage = Storage(objects, tmp_path / "cache")
    with ExitStack() as staged:
        key = staged.enter_context(storage.stage("datasets", ".arrow", b"kept"))
        staged.pop_all()
    assert objects.keys() == [key]


@pytest.fixture(params=["unmigrated-sqlite", "missing-bucket"])
def failing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ObjectStore, type[Exception]]]:
    """A real backend whose storage fails, and its error: a database without the
    objects table, a bucket that does not exist."""
    if request.param == "missing-bucket":
        endpoint = request.getfixturevalue("s3_endpoint")
        url = f"s3://no-such-bucket/x?endpoint_url={endpoint}"
        yield open_store(url, lambda: None), ClientError
        return
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    yield DatabaseStore(sessions_for(url)), OperationalError
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def test_discard_logs_a_failing_backend_and_does_not_raise(
    failing: tuple[ObjectStore, type[Exception]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objects, error = failing
    with pytest.raises(error):  # the backend does fail
        objects.delete_prefix("datasets/")
    caplog.set_level(logging.ERROR, logger="store.objects")
    Storage(objects, tmp_path / "cache").discard("datasets/a.arrow", "checkpoints/3/")
    logged = [r for r in caplog.records if r.name == "store.objects"]
    assert [r.getMessage() for r in logged] == [
        "could not delete stored objects datasets/a.arrow",
        "could not delete stored objects checkpoints/3/",
    ]
    assert all(r.exc_info for r in logged)


# --- URLs and settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://x", "expected a URL starting file://, database://, s3://"),
        ("objects", "expected a URL starting"),
        ("file://relative", "names a folder on this host"),
        ("file://", "needs an absolute folder"),
        ("s3://", "names a bucket"),
        ("s3:///prefix", "names a bucket"),
        ("database://somewhere", "takes no address"),
    ],
)
def test_a_bad_storage_url_is_refused_by_the_settings(
    url: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=reason):
        check_url(url)
    with pytest.raises(SettingsError) as refused:
        load_settings({"BACKPROP_DATA_DIR": str(tmp_path), "BACKPROP_STORAGE_URL": url})
    message = str(refused.value)
    assert message.startswith("BACKPROP_STORAGE_URL") and reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    ["file:///srv/objects", "database://", "s3://bucket", "s3://b/p/q?endpoint_url=http://h:9"],
)
def test_good_storage_urls_are_taken(url: str, tmp_path: Path) -> None:
    settings = load_settings({"BACKPROP_DATA_DIR": str(tmp_path), "BACKPROP_STORAGE_URL": url})
    assert settings.storage_url == url


def test_the_default_storage_is_a_folder_in_the_data_folder(tmp_path: Path) -> None:
    settings = load_settings({"BACKPROP_DATA_DIR": str(tmp_path)})
    assert settings.storage_url == f"file://{tmp_path.resolve()}/objects"
    found = open_store(settings.storage_url, lambda: None)
    assert isinstance(found, FileStore) and found.folder == tmp_path.resolve() / "objects"


# --- through the API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> FlaskClient:
    return client_for(service_settings)


def dataset_count() -> int:
    with Session.begin() as session:
        count: int = session.scalar(select(func.count()).select_from(Dataset))
        return count


def test_deleting_a_dataset_deletes_its_object(client: FlaskClient) -> None:
    assert storage().objects.url == "database://"
    body = post_dataset(client, name="to delete")
    with Session.begin() as session:
        dataset = q.get_dataset(session, body["id"])
        assert dataset is not None
        key = dataset.data_key
    assert key in storage().objects.keys("datasets/")
    assert client.delete(f"/datasets/{body['id']}").status_code == 204
    assert key not in storage().objects.keys("datasets/")
    assert client.get(f"/datasets/{body['id']}").status_code == 404


def test_an_upload_whose_insert_fails_leaves_no_object_and_no_row(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = q.add_dataset
    seen: list[str] = []

    def too_long_a_name(session: Any, name: str, key: str, **fields: Any) -> Dataset:
        # The API allows 200 characters; the column refuses more when inserted.
        seen.append(key)
        return real(session, "n" * 201, key, **fields)

    monkeypatch.setattr(q, "add_dataset", too_long_a_name)
    before_keys, before_rows = storage().objects.keys("datasets/"), dataset_count()
    response = client.post("/datasets", json={"name": "fails", **XOR})
    assert response.status_code == 500, response.json
    assert seen and seen[0].startswith("datasets/")  # it was staged, then deleted
    assert storage().objects.keys("datasets/") == before_keys
    assert dataset_count() == before_rows


def test_the_cache_keeps_the_most_recent_copies_within_its_bytes(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The database backend has no local files, so reads go through the cache; it keeps
    at most ``cache_bytes`` (least recently used out first) and forgets on discard."""
    store = Storage(open_store("database://", sessions_for(sqlite_url)), tmp_path / "cache", 2500)
    for name in ("a", "b", "c"):
        store.objects.put(f"cache-test/{name}", name.encode() * 1000)
    first = store.cached("cache-test/a", "digest-a", ".bin")
    time.sleep(0.01)
    store.cached("cache-test/b", "digest-b", ".bin")
    time.sleep(0.01)
    store.cached("cache-test/a", "digest-a", ".bin")  # used again: now the most recent
    time.sleep(0.01)
    store.cached("cache-test/c", "digest-c", ".bin")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "digest-a.bin",
        "digest-c.bin",
    ]
    assert first.read_bytes() == b"a" * 1000
    store.forget("digest-a")
    assert not first.exists()
    by_key = store.cached("cache-test/b", hashlib.sha256(b"cache-test/b").hexdigest(), ".bin")
    store.discard("cache-test/b")
    assert not by_key.exists() and store.objects.keys("cache-test/b") == []
