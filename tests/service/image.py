"""The Docker image's contents, made without a Docker engine, and the compose
file's services that run it.

No Docker daemon runs where the tests do, so the Dockerfile is carried out here
on folders: each stage gets a folder standing for its root file system, COPY
takes files from the build context as Docker would send it (honouring
.dockerignore) or from an earlier stage, and RUN runs its pip commands with the
pip of one fresh virtualenv, which stands for the image's Python. A RUN command
this module does not know fails the build, so the Dockerfile cannot grow a step
that these tests would silently skip.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.service.processes import ROOT

COMPOSE = ROOT / "docker-compose.yml"

# RUN commands that change nothing a virtualenv holds (the image's user account).
IGNORED_COMMANDS = {"useradd"}
# Instructions about running the container, not its files; the tests start the
# commands themselves.
RUNTIME_INSTRUCTIONS = {"USER", "EXPOSE", "CMD", "LABEL"}


def ignore_patterns(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, pattern) for each line of the context's .dockerignore, in order."""
    path = context / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    patterns = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        text = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        patterns.append((exception, re.compile(glob_regex(text))))
    return patterns


def glob_regex(pattern: str) -> str:
    """Docker's pattern language (Go's filepath.Match plus ``**``) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("^", "\\^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out + r"\Z"


def is_ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, pattern in patterns:
        if any(pattern.match(prefix) for prefix in prefixes):
            ignored = not exception
    return ignored


def context_files(context: Path) -> list[str]:
    """The files (relative, sorted) that `docker build` sends from ``context``."""
    patterns = ignore_patterns(context)
    # An ignored folder can be skipped whole unless an exception could bring files back.
    prune = not any(exception for exception, _ in patterns)
    found = []
    for folder, dirs, files in os.walk(context):
        base = Path(folder).relative_to(context).as_posix()
        here = "" if base == "." else base + "/"
        if prune:
            dirs[:] = [d for d in dirs if not is_ignored(here + d, patterns)]
        found += [here + f for f in files if not is_ignored(here + f, patterns)]
    return sorted(found)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


@dataclass
class Stage:
    root: Path
    workdir: PurePosixPath = PurePosixPath("/")
    env: dict[str, str] = field(default_factory=dict)

    def path(self, inside: str) -> Path:
        """Where a path of the stage's file system lies on this machine."""
        absolute = self.workdir / inside
        return self.root / str(absolute).lstrip("/")


@dataclass
class Image:
    final: Stage
    # The virtualenv every stage's pip ran in: the image's Python and its packages.
    venv: Path
    context_files: list[str]
    run_commands: list[list[str]] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def copy_into(sources: list[Path], dest: Path, many: bool) -> None:
    for source in sources:
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            target = dest / source.name if many or dest.is_dir() else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build(context: Path, folder: Path) -> Image:
    """Carry out ``context``/Dockerfile in ``folder``; returns the final stage and its venv."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    sent = folder / "context"
    files = context_files(context)
    for name in files:
        (sent / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(context / name, sent / name)
    stages: dict[str, Stage] = {}
    image = Image(Stage(folder), venv, files)
    for keyword, args in instructions(context / "Dockerfile"):
        stage = image.final
        if keyword == "FROM":
            words = args.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            image.final = stages[alias] = Stage(folder / f"stage-{len(stages)}")
        elif keyword == "WORKDIR":
            stage.workdir = stage.workdir / args
            stage.path(".").mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            for word in shlex.split(args):
                variable, _, value = word.partition("=")
                stage.env[variable] = value
        elif keyword == "COPY":
            words = shlex.split(args)
            origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            *sources, dest = [w for w in words if not w.startswith("--")]
            sources_at = [
                sent / s if origin is None else stages[origin].root / s.lstrip("/") for s in sources
            ]
            copy_into(sources_at, stage.path(dest), many=len(sources) > 1 or dest.endswith("/"))
        elif keyword == "RUN":
            for command in args.split("&&"):
                image.run_commands.append(run(shlex.split(command), stage, venv))
        elif keyword not in RUNTIME_INSTRUCTIONS:
            raise AssertionError(f"tests/service/image.py cannot carry out {keyword} {args}")
    return image


def run(words: list[str], stage: Stage, venv: Path) -> list[str]:
    """Carry out one command of a RUN line in ``stage``; returns it as it was written."""

    def local(word: str) -> list[str]:
        # Paths (with their globs) are the stage's, and never reach outside its folder.
        place = stage.path(word).resolve()
        assert place.is_relative_to(stage.root.resolve()), f"{word} leaves the stage"
        return sorted(glob.glob(str(place))) or [str(place)]

    program, *rest = words
    if program == "pip":
        # The image keeps no pip cache; here the cache is what keeps the tests fast.
        # Relative paths are found from the working directory pip runs in.
        args = [
            part
            for w in rest
            if w != "--no-cache-dir"
            for part in (local(w) if w.startswith("/") else [w])
        ]
        command = [str(venv / "bin" / "python"), "-m", "pip", *args]
        subprocess.run(command, cwd=stage.path("."), check=True, stdout=subprocess.DEVNULL)
    elif program == "rm":
        for target in (Path(part) for w in rest if not w.startswith("-") for part in local(w)):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    elif program not in IGNORED_COMMANDS:
        raise AssertionError(f"tests/service/image.py cannot run `{shlex.join(words)}`")
    return words


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def compose_command(service: str, bin: Path) -> list[str]:
    """A compose service's command, its program found in ``bin`` (the image's PATH)."""
    command = compose_services()[service]["command"]
    assert isinstance(command, list) and command[0] == "backprop", command
    return [str(bin / command[0]), *command[1:]]
