"""The wheel and the Docker image: built from the files the Dockerfile names,
installed (not editable) into a fresh virtualenv, and started from folders that
hold no checkout.

The session builds one image (tests/service/image.py carries the Dockerfile
out): its first stage is the one wheel build, its pip install the one
virtualenv. Every process here gets a container's environment: the image's ENV
and PATH and the service settings, nothing of this test process.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from store.migrate import alembic_config
from tests import worked_example as worked
from tests.service.conftest import create_database, delete_redis_keys, drop_database, environment
from tests.service.http import answers, call, finished_job, free_port
from tests.service.image import Image, build, compose_command, context_files
from tests.service.processes import ROOT, GroupProcess, wait_for

PACKAGES = {"api", "cli", "core", "migrations", "store", "worker"}
# The README's way for a compose user to get an API key.
KEY_COMMAND = re.compile(r"docker compose run --rm (\w+) (backprop [^`\n]+)")


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build(ROOT, tmp_path_factory.mktemp("image"))


def container_env(image: Image, home: Path, **settings: str) -> dict[str, str]:
    return {
        "PATH": f"{image.bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **image.final.env,
        **settings,
    }


def start(command: list[str], env: dict[str, str], folder: Path) -> GroupProcess:
    log = folder / f"{Path(command[0]).name}-{uuid.uuid4().hex[:6]}.log"
    return GroupProcess(command, env, log, cwd=folder, inherit=False)


def serving(process: GroupProcess, port: int) -> str:
    """The base URL once ``process`` answers there; fails with its log if it exits first."""
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: process.process.poll() is not None or answers(base), 60, 0.1, "the API")
    assert process.process.poll() is None, process.output()
    return base


def trained_worked_example(base: str, key: str) -> tuple[float, list[float]]:
    """(loss of epoch 1, prediction) of the worked example trained by the service at ``base``."""
    status, job = call(base, "POST", "/jobs", worked.JOB, key)
    assert status == 202, job
    done = finished_job(base, job["id"], key, timeout=90)
    assert done["status"] == "succeeded", done
    body = {"inputs": worked.INPUTS}
    status, out = call(base, "POST", f"/models/{done['model_id']}/predict", body, key)
    assert status == 200, out
    return done["loss"], out["outputs"][0]


def get(base: str, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.status, response.headers.get_content_type(), response.read().decode()


def installed(image: Image) -> dict[str, str]:
    """What the virtualenv's own Python says about the installed distribution."""
    script = textwrap.dedent("""
        import json, importlib.metadata as m, core, migrations, api
        d = m.distribution("backprop")
        print(json.dumps({
            "files": [str(f) for f in d.files], "top_level": d.read_text("top_level.txt"),
            "direct_url": d.read_text("direct_url.json"),
            "modules": [core.__file__, migrations.__file__, api.__file__],
        }))
    """)
    python = str(image.bin / "python")
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=image.venv)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_dockerignore_decides_the_build_context(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# comment\n.venv\n**/__pycache__\n*.log\n!keep.log\n")
    for name in ("pkg/a.py", "pkg/__pycache__/a.pyc", ".venv/bin/x", "x.log", "keep.log",
                 "pkg/y.log", "venv.py", "data/__pycache__.txt"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert context_files(tmp_path) == [
        ".dockerignore", "data/__pycache__.txt", "keep.log", "pkg/a.py", "pkg/y.log", "venv.py"
    ]  # fmt: skip


def test_image_installs_the_wheel_of_its_context(image: Image) -> None:
    assert "store/logs.py" in image.context_files  # the module the old image left behind
    installs = [command for command in image.run_commands if command[:2] == ["pip", "install"]]
    assert installs and not {"-e", "--editable"} & {word for c in installs for word in c}

    facts = installed(image)
    assert "editable" not in facts["direct_url"]
    for module in facts["modules"]:
        assert Path(module).is_relative_to(image.venv), module
    files = [f for f in facts["files"] if not f.startswith("..")]  # scripts live in bin/
    tops = {f.split("/")[0] for f in files if ".dist-info/" not in f}
    assert tops == PACKAGES
    assert set(facts["top_level"].split()) == PACKAGES
    # Migrations and the dashboard are data files; the wheel must carry every one.
    for folder in ("migrations", "api/static"):
        shipped = {f for f in files if f.startswith(folder + "/") and "__pycache__" not in f}
        in_checkout = {
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert shipped == in_checkout


def test_image_migrates_and_trains_on_postgres_and_redis(image: Image, tmp_path: Path) -> None:
    """The compose services' own commands, from the image, on this run's PostgreSQL and Redis."""
    url = create_database("image", migrate=False)
    settings = environment(url, "image", tmp_path / "data")
    env = container_env(image, tmp_path, **settings)
    started: list[GroupProcess] = []
    try:
        migrate = subprocess.run(
            compose_command("migrate", image.bin), env=env, cwd=tmp_path, capture_output=True
        )
        assert migrate.returncode == 0, migrate.stderr.decode()
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        with sa.create_engine(url).connect() as connection:
            assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == head

        service, command = KEY_COMMAND.findall((ROOT / "README.md").read_text())[0]
        key_command = compose_command(service, image.bin)[:1] + command.split()[1:]
        created = subprocess.run(key_command, env=env, cwd=tmp_path, capture_output=True)
        assert created.returncode == 0, created.stderr.decode()
        key = created.stdout.decode().strip()

        port = free_port()
        started.append(start(compose_command("worker", image.bin), env, tmp_path))
        api_env = {**env, "BACKPROP_PORT": str(port)}
        started.append(start(compose_command("api", image.bin), api_env, tmp_path))
        base = serving(started[-1], port)
        ready = {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        assert call(base, "GET", "/readyz") == (200, ready)
        loss, outputs = trained_worked_example(base, key)
        assert loss == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)
        assert outputs == pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)
    finally:
        for process in started:
            process.stop()
        drop_database(url)
        delete_redis_keys(settings["BROKER_PREFIX"])


def test_wheel_runs_up_on_embedded_defaults_in_an_empty_folder(
    image: Image, tmp_path: Path
) -> None:
    port = free_port()
    up = start(
        [str(image.bin / "backprop"), "up", "--port", str(port)],
        container_env(image, tmp_path),
        tmp_path,
    )
    try:
        base = serving(up, port)
        for page in ("/", "/docs"):
            status, kind, html = get(base, page)
            assert (status, kind) == (200, "text/html"), page
            for asset in re.findall(r'(?:src|href)="(/ui/[^"]+)"', html):
                assert get(base, asset)[0] == 200, asset
        key = (tmp_path / "data" / "api-key").read_text().strip()
        loss, outputs = trained_worked_example(base, key)
        assert loss == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)
        assert outputs == pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)
        # The embedded defaults: SQLite and the filesystem broker, in this folder's ./data.
        assert (tmp_path / "data" / "backprop.db").is_file()
        assert (tmp_path / "data" / "broker").is_dir()
    finally:
        up.stop()
    assert up.process.returncode == 0, up.output()
