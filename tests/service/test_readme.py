"""The README's walk-through and command-line sections, run as written.

The shell blocks are read from README.md itself, so the document and this test
cannot drift apart: they run in one bash against `backprop up` on the embedded
defaults, in a folder laid out as after `make run`, on a database that already
holds a job (so that an id guessed from an empty database would show). The
answers they document are checked against what the service answers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import worked_example as worked
from tests.service.cli_process import BACKPROP, embedded_env, running_up
from tests.service.http import call, finished_job
from tests.service.processes import ROOT

README = ROOT / "README.md"
# Every section with commands, in the README's order of use.
SECTIONS = (
    "A walk-through with curl",
    "Export to ONNX",
    "The backprop trace",
    "The command-line client",
    "Model registry",
    "Sweeps",
)
MARK = "@@ README block"


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end < 0 else end]


def shell_blocks() -> list[str]:
    text = README.read_text()
    return [
        block
        for title in SECTIONS
        for block in re.findall(r"^```sh\n(.*?)^```", section(text, title), re.M | re.S)
    ]


def json_answers(output: str) -> list[Any]:
    """The JSON objects a block printed, one per line (curl's answers end in a newline)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def the_one(answers: list[Any], *keys: str) -> Any:
    found = [answer for answer in answers if all(key in answer for key in keys)]
    assert len(found) == 1, answers
    return found[0]


def run_blocks(folder: Path, port: int, env: dict[str, str]) -> list[str]:
    """Run the README's blocks in one bash in ``folder`` against the service on ``port``;
    returns what each block printed on stdout."""
    blocks = shell_blocks()
    # The README names port 8000; the service under test has a free one.
    script = "set -euo pipefail\n" + "".join(
        f"echo '{MARK} {index}'\n{block.replace('localhost:8000', f'localhost:{port}')}"
        for index, block in enumerate(blocks)
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    printed = re.split(rf"^{MARK} \d+\n", done.stdout, flags=re.M)[1:]
    assert len(printed) == len(blocks)
    return printed


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the README's commands run in (files they save land there)."""
    folder = tmp_path_factory.mktemp("readme")
    # What the commands use of a clone: the examples, and bench.sweeps for the digits
    for name in ("examples", "bench"):
        (folder / name).symlink_to(ROOT / name)
    return folder


@pytest.fixture(scope="module")
def walk_through(readme_folder: Path) -> tuple[list[str], list[str]]:
    """(the blocks, what each printed on stdout)."""
    folder = readme_folder
    with running_up(folder, env=embedded_env()) as up:
        key = (folder / "data" / "api-key").read_text().strip()
        status, seed = call(up.base, "POST", "/jobs", worked.job(3), key)
        assert status == 202, seed
        assert finished_job(up.base, seed["id"], key)["status"] == "succeeded"
        env = {
            **embedded_env(),
            "BACKPROP_URL": up.base,
            "PATH": f"{Path(BACKPROP).parent}{os.pathsep}{os.environ['PATH']}",
        }
        printed = run_blocks(folder, up.port, env)
    return shell_blocks(), printed


def block_with(blocks: list[str], text: str) -> int:
    found = [index for index, block in enumerate(blocks) if text in block]
    assert len(found) == 1, f"one README block should contain {text!r}"
    return found[0]


def test_the_worked_example_answers_as_documented(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, '"optimizer": {"name": "sgd", "learning_rate": 0.5}')
    for documented in ("0.298371109", "0.742088111", "0.775284968"):
        assert documented in blocks[index]
    answers = json_answers(printed[index])
    job = the_one(answers, "status", "loss")
    assert job["status"] == "succeeded"
    assert job["loss"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)
    assert the_one(answers, "epochs")["epochs"][0]["loss"] == job["loss"]
    assert the_one(answers, "outputs")["outputs"] == [
        pytest.approx(worked.PREDICTION_AFTER_1, abs=1e-8)
    ]


def test_the_iris_walk_through_predicts_the_documented_labels(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "name=iris")
    assert '"labels":["setosa","virginica"]' in blocks[index]
    answers = json_answers(printed[index])
    assert the_one(answers, "classes")["classes"] == ["setosa", "versicolor", "virginica"]
    assert the_one(answers, "outputs")["labels"] == ["setosa", "virginica"]


def test_the_command_line_predicts_the_documented_labels(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "backprop predict")
    assert ",setosa\n" in blocks[index] and ",virginica\n" in blocks[index]
    header, *rows = list(csv.reader(io.StringIO(printed[index])))
    assert header == ["output_0", "output_1", "output_2", "label"]
    assert [row[-1] for row in rows] == ["setosa", "virginica"]


def test_the_penguins_walk_through_scores_held_out_rows(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "name=penguins")
    assert '"labels":["Gentoo"]' in blocks[index]
    answers = json_answers(printed[index])
    dataset = the_one(answers, "profile")
    assert dataset["task"] == "classification"
    spec = the_one(answers, "network", "training")
    assert spec["network"]["input_dim"] == 11
    assert spec["network"]["layers"][-1] == {"units": 3, "activation": "softmax"}
    metrics = the_one(answers, "metrics")["metrics"]
    assert metrics["n_samples"] == 86 and metrics["accuracy"] > 0.9
    assert the_one(answers, "outputs")["labels"] == ["Gentoo"]


def test_the_registry_predicts_through_an_alias(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "registered-models/iris/versions")
    answers = json_answers(printed[index])
    version = the_one(answers, "version", "model_id")
    assert version["version"] == 1 and version["description"] == "first iris model"
    assert the_one(answers, "versions", "aliases")["aliases"] == {"production": 1}
    assert the_one(answers, "outputs")["labels"] == ["setosa", "virginica"]
    assert "x-model-version: 1" in printed[index].lower()
    lineage = the_one(answers, "lineage")["lineage"]
    assert lineage["job_id"] and len(lineage["spec_sha256"]) == 64
    table = [line for line in printed[index].splitlines() if not line.startswith("{")]
    assert any("production" in line for line in table), printed[index]  # the versions table


def test_the_trace_answers_the_seeds_numbers(walk_through: tuple[list[str], list[str]]) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "localhost:8000/trace")
    step = the_one(json_answers(printed[index]), "units", "weights")
    assert step["units"]["o1"]["out"] == pytest.approx(0.751365070, abs=1e-9)
    assert step["units"]["o1"]["delta"] == pytest.approx(0.138498562, abs=1e-9)
    assert step["weights"]["w5"]["after"] == pytest.approx(0.358916480, abs=1e-9)
    assert step["weights"]["w1"]["gradient"] == pytest.approx(0.000438568, abs=1e-9)
    assert step["error"]["total"] == pytest.approx(worked.EPOCH_1_LOSS, abs=1e-9)


def test_the_export_saves_an_onnx_file_of_the_model(
    walk_through: tuple[list[str], list[str]], readme_folder: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    blocks, _ = walk_through
    block_with(blocks, "export?format=onnx")
    (saved,) = readme_folder.glob("model-*.onnx")
    model = onnx.load(saved)
    onnx.checker.check_model(model)
    assert {output.name for output in model.graph.output} == {"outputs", "labels"}


def test_the_sweep_example_ends_with_its_best_trial(
    walk_through: tuple[list[str], list[str]],
) -> None:
    blocks, printed = walk_through
    index = block_with(blocks, "backprop sweep examples/digits-sweep.json")
    sweep = the_one(json_answers(printed[index]), "trials", "best")
    assert sweep["status"] == "succeeded", sweep
    assert len(sweep["trials"]) == sweep["trials_total"] == 24
    assert any(trial["state"] == "pruned" for trial in sweep["trials"])
    assert sweep["best"]["value"] == max(
        trial["value"] for trial in sweep["trials"] if trial["state"] == "complete"
    )
