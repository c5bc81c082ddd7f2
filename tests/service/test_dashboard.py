"""The dashboard in a real browser (headless Chromium driven by Playwright): a job's
loss curve gains points while a real worker trains it, and the final status shows;
a wrong key is explained; the job page shows the model and can cancel; a CSV file
uploaded through the page shows its profile, trains with the default network and
ends with held-out scores and a confusion matrix.
With BACKPROP_UPDATE_SCREENSHOT=1 it also refreshes the README's docs/dashboard.png;
otherwise the screenshot goes to the test's temporary folder, leaving the checkout clean."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.service.http import call, finished_job
from tests.service.processes import ROOT, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


def test_pages_use_no_outside_urls() -> None:
    for page in (ROOT / "api" / "static" / "ui").iterdir():
        assert not re.search(r"(src|href)=[\"']?https?://", page.read_text()), page
        assert 'fetch("http' not in page.read_text(), page
    assert (ROOT / "api" / "static" / "vendor" / "uplot" / "LICENSE").exists()


def test_the_loss_curve_grows_while_the_job_trains(
    live_api: tuple[str, str], tmp_path: Path
) -> None:
    base, key = live_api
    iris = (ROOT / "examples" / "iris.csv").read_text()
    import urllib.request

    upload = urllib.request.Request(
        f"{base}/datasets?name=iris&target=species",
        data=iris.encode(),
        method="POST",
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(upload) as response:
        dataset = json.loads(response.read())

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/")
        # A wrong key first: the key form comes back saying what the API said.
        page.fill("input[name=key]", "bp_wrong")
        page.click("button[type=submit]")
        page.wait_for_selector("#key-error")
        assert page.locator("#key-error").text_content() == (
            "The API refused this key (401 unauthorized): the API key is unknown or revoked. "
            "Paste a valid key."
        )
        # Submitted only now, so that the page is ready to watch it start training.
        status, job = call(
            base,
            "POST",
            "/jobs",
            {
                "dataset_id": dataset["id"],
                "network": {
                    "input_dim": 4,
                    "layers": [
                        {"units": 32, "activation": "relu"},
                        {"units": 3, "activation": "softmax"},
                    ],
                },
                "training": {
                    "epochs": 4000,
                    "batch_size": 8,
                    "optimizer": "adam",
                    "normalize": "standardize",
                    "validation_split": 0.2,
                    # a fifth held out, so that the page (and the README's picture) has scores
                    "test_split": 0.2,
                },
            },
            key,
        )
        assert status == 202, job
        page.fill("input[name=key]", key)
        page.click("button[type=submit]")
        page.wait_for_selector(f"tr[data-job='{job['id']}']")
        assert page.locator("#key-error").count() == 0
        page.goto(f"{base}/#/jobs/{job['id']}")
        page.wait_for_selector("#cancel", state="visible")
        chart = page.locator("#chart")

        def points() -> int:
            return int(chart.get_attribute("data-points") or 0)

        wait_for(lambda: points() > 0, 30, 0.05, "the first points")
        first = points()
        wait_for(lambda: points() > first, 30, 0.05, "the curve to gain points")
        page.wait_for_function(
            "document.getElementById('status').textContent === 'succeeded'", timeout=60_000
        )
        assert points() == 4000
        assert page.locator("#reason").text_content() == "stopped: max_epochs"
        assert not page.locator("#cancel").is_visible()
        done = call(base, "GET", f"/jobs/{job['id']}", key=key)[1]
        assert page.locator("#model-id").text_content() == f"#{done['model_id']}"
        last = call(base, "GET", f"/jobs/{job['id']}/epochs?after=3999", key=key)[1]["epochs"]
        shown = page.locator("#val-accuracy").text_content()
        assert last[0]["val_accuracy"] is not None
        assert float(shown or "nan") == pytest.approx(last[0]["val_accuracy"], rel=1e-5)
        page.wait_for_selector("#predict-input")
        # The form starts with one row of the model's named features, each at the
        # value its preprocessing fills a missing cell with (the training median).
        model = call(base, "GET", f"/models/{done['model_id']}", key=key)[1]
        fills = {c["name"]: c["fill"] for c in model["spec"]["preprocess"]["columns"]}
        start = json.loads(page.input_value("#predict-input"))
        assert start == [fills]
        assert list(start[0]) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        page.click("#predict button[type=submit]")
        page.wait_for_function(
            "document.getElementById('predict-output').textContent.includes('labels')"
        )
        page.fill("#predict-input", "[[5.1, 3.5, 1.4, 0.2]]")
        page.click("#predict button[type=submit]")
        page.wait_for_function(
            "document.getElementById('predict-output').textContent.includes('setosa')"
        )
        page.wait_for_selector("#confusion")
        assert page.locator("#metrics-rows").text_content() == "30 test rows held out of training"
        refresh = os.environ.get("BACKPROP_UPDATE_SCREENSHOT") == "1"
        screenshot = ROOT / "docs" / "dashboard.png" if refresh else tmp_path / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        assert first < 4000
        # The curve was drawn: the plot's canvas holds coloured (non-grey) pixels.
        drawn = page.evaluate(
            """() => {
                const canvas = document.querySelector('#chart canvas');
                const context = canvas.getContext('2d');
                const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
                let coloured = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (Math.abs(data[i] - data[i + 2]) > 60) coloured++;
                }
                return coloured;
            }"""
        )
        assert drawn > 500
        assert errors == []
        browser.close()


def _open_dashboard(p: Any, base: str, key: str) -> tuple[Any, Any, list[str]]:
    """A browser on the dashboard, signed in with ``key``, and its page's errors."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_selector("#jobs")
    return browser, page, errors


def test_the_predict_form_is_as_wide_as_an_unnamed_model(live_api: tuple[str, str]) -> None:
    base, key = live_api
    # Three unnamed inputs (a JSON dataset without feature_names).
    dataset = {
        "name": "three",
        "inputs": [[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1]],
        "targets": [[0], [1], [1], [0]],
    }
    network = {"input_dim": 3, "layers": [{"units": 1, "activation": "sigmoid"}]}
    status, job = call(
        base,
        "POST",
        "/jobs",
        {"dataset": dataset, "network": network, "training": {"epochs": 5}},
        key,
    )
    assert status == 202, job
    assert finished_job(base, job["id"], key)["status"] == "succeeded"
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.goto(f"{base}/#/jobs/{job['id']}")
        page.wait_for_selector("#predict-input")
        assert page.input_value("#predict-input") == "[[0,0,0]]"
        page.click("#predict button[type=submit]")
        page.wait_for_function(
            "document.getElementById('predict-output').textContent.includes('outputs')"
        )
        # Not a classifier with a validation split: no accuracy to show.
        assert page.locator("#val-accuracy").text_content() == "–"
        assert errors == []
        browser.close()


def test_the_cancel_button_cancels_a_running_job(live_api: tuple[str, str]) -> None:
    base, key = live_api
    # Some hundreds of epochs a second, not the tens of thousands four rows would give:
    # a loaded machine's stream and browser keep up, so the status is seen at once.
    inputs = [[(i % 7) / 7, (i % 5) / 5] for i in range(400)]
    targets = [int((i % 7) / 7 > (i % 5) / 5) for i in range(400)]
    dataset = {"name": "rows", "inputs": inputs, "targets": targets}
    network = {"input_dim": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
    training = {"epochs": 1_000_000, "batch_size": 1}
    body = {"dataset": dataset, "network": network, "training": training}
    status, job = call(base, "POST", "/jobs", body, key)
    assert status == 202, job
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.goto(f"{base}/#/jobs/{job['id']}")
        page.wait_for_selector("#cancel", state="visible")
        page.click("#cancel")
        page.wait_for_function(
            "document.getElementById('status').textContent === 'cancelled'", timeout=30_000
        )
        assert not page.locator("#cancel").is_visible()
        assert page.locator("#reason").text_content() == "stopped: cancelled"
        assert page.locator("#model-id").text_content() == "–"
        assert errors == []
        browser.close()
    assert call(base, "GET", f"/jobs/{job['id']}", key=key)[1]["status"] == "cancelled"


def test_docs_page_renders_every_operation(live_api: tuple[str, str]) -> None:
    base, key = live_api
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(f"{base}/docs")
        page.wait_for_selector("details.op")
        status, document = call(base, "GET", "/openapi.json")
        operations = sum(len(methods) for methods in document["paths"].values())
        assert page.locator("details.op").count() == operations
        # Pasted in order, nothing is cancelled or deleted before the examples that use it.
        shown = page.locator("details.op summary").all_text_contents()
        ending = [i for i, op in enumerate(shown) if op.startswith("DELETE") or "/cancel" in op]
        assert len(ending) >= 2 and ending == list(range(len(shown) - len(ending), len(shown)))

        # One example per body media type the document gives one for (JSON, CSV...),
        # and one for each operation without a body.
        def examples(operation: dict[str, Any]) -> int:
            content = operation.get("requestBody", {}).get("content")
            if content is None:
                return 1
            return sum("example" in media for media in content.values())

        every = [op for methods in document["paths"].values() for op in methods.values()]
        assert page.locator("pre.example").count() == sum(map(examples, every))
        upload = document["paths"]["/datasets"]["post"]
        assert upload["operationId"] == "datasets_create_dataset" and examples(upload) >= 2
        example = page.locator(
            "details[data-operation='jobs_create_job'] pre.example"
        ).text_content()
        assert example.startswith(f"curl -X POST '{base}/jobs'")
        assert "Authorization: Bearer $KEY" in example
        # The commands as a user copies them, run by a shell: quoting and the CSV
        # here-document must survive the paste.
        uploads = page.locator("details[data-operation='datasets_create_dataset'] pre.example")
        commands = [example, *uploads.all_text_contents()]
        browser.close()
    assert len(commands) == 1 + examples(upload)
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", 'curl() { command curl --silent --fail-with-body "$@"; }\n' + command],
            env={**os.environ, "KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert json.loads(done.stdout)["id"] >= 1


def test_the_dataset_page_counts_classes_or_targets(live_api: tuple[str, str]) -> None:
    base, key = live_api
    labels = {"name": "three-classes", "inputs": [[0], [1], [2]], "targets": ["a", "b", "c"]}
    numbers = {"name": "two-targets", "inputs": [[0], [1]], "targets": [[0, 1], [1, 0]]}
    ids = []
    for dataset in (labels, numbers):
        status, body = call(base, "POST", "/datasets", dataset, key)
        assert status == 201, body
        ids.append(body["id"])
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        shapes = []
        for ident in ids:
            page.goto(f"{base}/#/datasets/{ident}")
            page.wait_for_selector(f"h1:has-text('Dataset #{ident}')")
            shapes.append(page.locator("#shape").text_content())
        assert shapes == [
            "3 samples × 1 feature → 3 classes",
            "2 samples × 1 feature → 2 targets",
        ]
        assert errors == []
        browser.close()


def test_a_csv_uploaded_through_the_page_trains_and_is_scored(
    live_api: tuple[str, str], tmp_path: Path
) -> None:
    """palmerpenguins' 344 penguins (with their missing cells) as a user's CSV file:
    the upload form offers its header's columns, the dataset page profiles them, the
    default job trains on them and the job page scores the quarter held out."""
    from palmerpenguins import load_penguins

    base, key = live_api
    penguins = load_penguins()
    path = tmp_path / "penguins.csv"
    penguins.to_csv(path, index=False)
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.click("header nav a:has-text('Datasets')")
        page.wait_for_selector("#upload")
        page.set_input_files("#upload-file", str(path))
        page.wait_for_selector("#upload-target option[value=species]")
        offered = page.locator("#upload-target option").all_text_contents()
        assert offered == list(penguins.columns)
        assert page.input_value("#upload-name") == "penguins"
        # A target that is not a column: the API's error shows, and nothing is stored.
        page.evaluate(
            """() => {
                const select = document.getElementById('upload-target');
                select.append(new Option('beak_colour', 'beak_colour'));
                for (const option of select.options) {
                    option.selected = option.value === 'beak_colour';
                }
            }"""
        )
        stored = call(base, "GET", "/datasets", key=key)[1]["datasets"]
        page.click("#upload-submit")
        page.wait_for_function("document.getElementById('upload-error').textContent !== ''")
        problem = page.locator("#upload-error").text_content() or ""
        assert problem.startswith("422 validation_error: ") and "beak_colour" in problem, problem
        assert problem.endswith("(target)")
        assert call(base, "GET", "/datasets", key=key)[1]["datasets"] == stored

        page.select_option("#upload-target", "species")
        page.select_option("#upload-task", "classification")
        page.click("#upload-submit")
        page.wait_for_selector("#profile")
        dataset_id = int(page.url.rsplit("/", 1)[1])
        dataset = call(base, "GET", f"/datasets/{dataset_id}", key=key)[1]
        assert dataset["task"] == "classification"

        def cells(column: str) -> dict[str, str]:
            row = page.locator(f"#profile tr[data-column='{column}']")
            found = {}
            for name in ("type", "role", "missing", "distinct", "min", "max", "top"):
                cell = row.locator(f"td.{name}")
                if cell.count():
                    found[name] = (cell.text_content() or "").strip()
            return found

        shown = [
            c
            for c in page.locator("#profile tr[data-column]").evaluate_all(
                "rows => rows.map(r => r.dataset.column)"
            )
        ]
        assert shown == list(penguins.columns)
        island = cells("island")
        assert island["type"] == "category" and island["role"] == "feature"
        assert island["distinct"] == "3" and island["missing"] == "0"
        assert island["top"].startswith("Biscoe 168")
        assert "Dream 124" in island["top"] and "Torgersen 52" in island["top"]
        bill = cells("bill_length_mm")
        assert bill["type"] == "number" and bill["missing"] == "2"
        assert float(bill["min"]) == penguins["bill_length_mm"].min()
        assert float(bill["max"]) == penguins["bill_length_mm"].max()
        assert cells("species")["role"] == "target"
        assert cells("sex")["missing"] == str(penguins["sex"].isna().sum())
        # Ten bars per number column, as tall as their counts.
        bars = page.locator("#profile tr[data-column='bill_length_mm'] svg.histogram rect")
        assert bars.count() == 10
        heights = [float(bars.nth(i).get_attribute("height") or "nan") for i in range(10)]
        counts = next(c for c in dataset["profile"]["columns"] if c["name"] == "bill_length_mm")[
            "histogram"
        ]["counts"]
        assert sum(counts) == len(penguins) - 2
        assert heights.index(max(heights)) == counts.index(max(counts))
        balance = page.locator("#class-balance tr[data-class]").evaluate_all(
            "rows => rows.map(r => [r.dataset.class, r.cells[1].textContent])"
        )
        expected = penguins["species"].value_counts().sort_index()
        assert balance == [[name, str(n)] for name, n in expected.items()]

        # The default job, as the textarea has it, from the dataset page.
        spec = json.loads(page.input_value("#job-spec"))
        assert spec == {
            "network": {"layers": [{"units": 64, "activation": "relu"}]},
            "training": {
                "epochs": 200,
                "optimizer": "adam",
                "normalize": "standardize",
                "test_split": 0.25,
                "validation_split": 0.1,
            },
        }
        page.click("#job-submit")
        page.wait_for_url(re.compile(r".*#/jobs/\d+$"))
        job_id = int(page.url.rsplit("/", 1)[1])
        # The job page renders once its job and spec have come.
        page.wait_for_function(
            "document.getElementById('status')?.textContent === 'succeeded'", timeout=120_000
        )
        page.wait_for_selector("#metrics")
        job = call(base, "GET", f"/jobs/{job_id}", key=key)[1]
        assert job["dataset_id"] == dataset_id
        metrics = call(base, "GET", f"/models/{job['model_id']}", key=key)[1]["metrics"]
        shown_accuracy = page.locator("#scores tr[data-metric=accuracy] td").text_content()
        assert float(shown_accuracy or "nan") == pytest.approx(metrics["accuracy"], rel=1e-3)
        assert metrics["accuracy"] > 0.9
        # A quarter of the 344 rows was held out: round(0.25 * 344) = 86.
        test_rows = round(0.25 * len(penguins))
        assert page.locator("#metrics-rows").text_content() == (
            f"{test_rows} test rows held out of training"
        )
        header = page.locator("#confusion tr").first.locator("th").all_text_contents()
        assert header[1:] == ["Adelie", "Chinstrap", "Gentoo"]
        matrix = page.locator("#confusion tr[data-class]").evaluate_all(
            "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => Number(td.textContent)))"
        )
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
        assert sum(map(sum, matrix)) == test_rows
        assert matrix == metrics["confusion_matrix"]["matrix"]
        # The predict form starts from a row the model takes as it is.
        page.wait_for_selector("#predict-input")
        start = json.loads(page.input_value("#predict-input"))
        assert start[0]["island"] == "Biscoe" and start[0]["sex"] == "female"
        page.click("#predict button[type=submit]")
        page.wait_for_function(
            "document.getElementById('predict-output').textContent.includes('labels')"
        )
        assert errors == []
        browser.close()


def test_a_regression_model_shows_its_errors(live_api: tuple[str, str], tmp_path: Path) -> None:
    """The penguins' body mass predicted from the rest: MAE, RMSE and R² of the rows
    held out, as the model has them, and no confusion matrix."""
    from palmerpenguins import load_penguins

    base, key = live_api
    path = tmp_path / "penguins.csv"
    # The service refuses rows without a target: the two penguins never weighed go.
    load_penguins().dropna(subset=["body_mass_g"]).to_csv(path, index=False)
    import urllib.request

    upload = urllib.request.Request(
        f"{base}/datasets?name=mass&target=body_mass_g&task=regression",
        data=path.read_bytes(),
        method="POST",
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(upload) as response:
        dataset = json.loads(response.read())
    body = {
        "dataset_id": dataset["id"],
        "network": {"layers": [{"units": 16, "activation": "relu"}]},
        "training": {"epochs": 100, "optimizer": "adam", "normalize": "standardize",
                     "test_split": 0.25},
    }  # fmt: skip
    status, job = call(base, "POST", "/jobs", body, key)
    assert status == 202, job
    done = finished_job(base, job["id"], key, timeout=120)
    assert done["status"] == "succeeded", done
    metrics = call(base, "GET", f"/models/{done['model_id']}", key=key)[1]["metrics"]
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.goto(f"{base}/#/jobs/{job['id']}")
        page.wait_for_selector("#metrics[data-task=regression]")
        shown = page.locator("#scores tr[data-metric]").evaluate_all(
            "rows => rows.map(r => [r.dataset.metric, r.cells[1].textContent])"
        )
        assert [name for name, _ in shown] == ["mae", "rmse", "r2"]
        for name, value in shown:
            assert float(value) == pytest.approx(metrics[name], rel=1e-3), name
        assert page.locator("#confusion").count() == 0
        assert errors == []
        browser.close()
