"""The dashboard in a real browser (headless Chromium driven by Playwright): a job's
loss curve gains points while a real worker trains it, and the final status shows.
With BACKPROP_UPDATE_SCREENSHOT=1 it also refreshes the README's docs/dashboard.png;
otherwise the screenshot goes to the test's temporary folder, leaving the checkout clean."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.service.http import call
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
    import json

    with urllib.request.urlopen(upload) as response:
        dataset = json.loads(response.read())
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
            },
        },
        key,
    )
    assert status == 202, job

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/")
        page.fill("input[name=key]", key)
        page.click("button[type=submit]")
        page.wait_for_selector(f"tr[data-job='{job['id']}']")
        page.goto(f"{base}/#/jobs/{job['id']}")
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
        page.wait_for_selector("#predict-input")
        page.fill("#predict-input", "[[5.1, 3.5, 1.4, 0.2]]")
        page.click("#predict button[type=submit]")
        page.wait_for_function(
            "document.getElementById('predict-output').textContent.includes('setosa')"
        )
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


def test_docs_page_renders_every_operation(live_api: tuple[str, str]) -> None:
    base, _ = live_api
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(f"{base}/docs")
        page.wait_for_selector("details.op")
        status, document = call(base, "GET", "/openapi.json")
        operations = sum(len(methods) for methods in document["paths"].values())
        assert page.locator("details.op").count() == operations
        assert page.locator("pre.example").count() == operations
        example = page.locator(
            "details[data-operation='jobs_create_job'] pre.example"
        ).text_content()
        assert "curl -X POST" in example and "Authorization: Bearer" in example
        browser.close()
    assert shutil.which("chromium")
