"""The trace view (#/trace) in a real browser: it opens on seed 001's example, steps
through forward pass, error, backward pass and update with the seed's numbers in the
drawing, re-traces an edited body, says what a refused one got wrong, and traces a
trained model's step (#/trace/<model id>)."""

from __future__ import annotations

import json
from pathlib import Path

from tests import worked_example as seed
from tests.service.http import call, finished_job
from tests.service.test_dashboard import _open_dashboard, playwright


def test_stepping_through_the_seeds_example(live_api: tuple[str, str], tmp_path: Path) -> None:
    base, key = live_api
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.click("header nav a[href='#/trace']")
        page.wait_for_selector("#trace-svg")
        stage = page.locator("#trace-stage")
        assert stage.text_content() == "1 / 4: Forward pass"
        svg = page.locator("#trace-svg")
        o1 = page.locator("#trace-svg [data-unit='o1']")
        assert "out = 0.75136507" in (o1.text_content() or "")
        assert page.locator("#trace-svg [data-unit='h1'] .stage-0").first.text_content() == (
            "net = 0.3775"
        )
        w5_after = page.locator("#trace-svg text[data-weight='w5'] .after")
        error = page.locator("#trace-svg .total")
        # Later stages' numbers are drawn but not shown yet.
        assert not w5_after.is_visible() and not error.is_visible()
        assert page.locator("#trace-back").is_disabled()

        page.click("#trace-step")
        assert stage.text_content() == "2 / 4: Error"
        assert error.is_visible() and error.text_content() == "E_total = 0.298371109"
        assert "at-error" in (svg.get_attribute("class") or "")
        page.click("#trace-step")
        assert stage.text_content() == "3 / 4: Backward pass"
        delta = page.locator("#trace-svg [data-unit='o1'] .stage-2", has_text="δ")
        assert delta.is_visible() and delta.text_content() == "δ = 0.138498562"
        gradient = page.locator("#trace-svg text[data-weight='w5'] .gradient")
        assert gradient.text_content() == "∂E/∂w5 = 0.0821670406"
        assert not w5_after.is_visible()
        page.click("#trace-step")
        assert stage.text_content() == "4 / 4: Update"
        assert w5_after.is_visible()
        assert w5_after.text_content() == "w5⁺ = 0.35891648"
        assert page.locator("#trace-svg text[data-weight='w1'] .after").text_content() == (
            "w1⁺ = 0.149780716"
        )
        assert "(frozen)" in (o1.text_content() or "")
        assert page.locator("#trace-step").is_disabled()
        # The numbers tables hold the same step.
        assert page.locator("#trace-weights tr[data-weight='w5'] td").nth(4).text_content() == (
            "0.35891648"
        )
        page.screenshot(path=str(tmp_path / "trace.png"), full_page=True)

        # Back steps hide the update again.
        page.click("#trace-back")
        assert stage.text_content() == "3 / 4: Backward pass"
        assert not w5_after.is_visible()

        # An edited learning rate re-traces from the first stage.
        page.fill("#trace-lr", "0.1")
        page.click("#trace-run")
        page.wait_for_function(
            "document.querySelector(\"#trace-svg text[data-weight='w5'] .after\")"
            ".textContent === 'w5⁺ = 0.391783296'"
        )
        assert stage.text_content() == "1 / 4: Forward pass"

        # Two hidden layers: units h<k>_<j>, every weight still labelled.
        deeper = {
            "input_dim": 2,
            "layers": [
                {"units": 3, "activation": "tanh", "weights": [[0.1, 0.2]] * 3, "bias": [0] * 3},
                {
                    "units": 2,
                    "activation": "relu",
                    "weights": [[0.3, 0.1, 0.2]] * 2,
                    "bias": [0.1] * 2,
                },
                {"units": 1, "activation": "sigmoid", "weights": [[0.5, -0.4]], "bias": [0]},
            ],
        }
        page.fill("#trace-network", json.dumps(deeper))
        page.fill("#trace-targets", "[0.7]")
        page.click("#trace-run")
        page.wait_for_selector("#trace-svg [data-unit='h2_2']")
        assert page.locator("#trace-svg text[data-weight]").count() == 6 + 6 + 2
        assert page.locator("#trace-svg text[data-weight='w13'] tspan").first.text_content() == (
            "w13 = 0.5"
        )

        # A refused body says what and where.
        page.fill("#trace-targets", "[0.01, 0.5]")
        page.click("#trace-run")
        page.wait_for_function("document.getElementById('trace-error').textContent !== ''")
        assert "(targets)" in (page.locator("#trace-error").text_content() or "")
        assert errors == []
        browser.close()


def test_tracing_a_trained_model(live_api: tuple[str, str]) -> None:
    base, key = live_api
    status, job = call(base, "POST", "/jobs", seed.job(1), key)
    assert status == 202, job
    model_id = finished_job(base, job["id"], key)["model_id"]
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.goto(f"{base}/#/trace/{model_id}")
        page.wait_for_selector("#trace-inputs")
        assert page.locator("#trace-network").count() == 0
        page.fill("#trace-inputs", "[0.05, 0.1]")
        page.fill("#trace-targets", "[0.01, 0.99]")
        page.click("#trace-run")
        # After one update the seed's network outputs 0.742088111 at o1.
        page.wait_for_function(
            "(document.querySelector(\"#trace-svg [data-unit='o1']\") || {}).textContent"
            "?.includes('out = 0.742088111')"
        )
        assert "η = 0.5" in (page.locator("#trace-numbers p").text_content() or "")
        assert errors == []
        browser.close()


def test_a_larger_softmax_model_is_drawn_without_labels(live_api: tuple[str, str]) -> None:
    base, key = live_api
    dataset = {
        "inputs": [
            [0, 0, 1, 2],
            [1, 0, 0, 1],
            [2, 1, 0, 0],
            [0, 2, 1, 1],
            [1, 1, 2, 0],
            [2, 0, 1, 2],
        ],
        "targets": ["a", "b", "c", "a", "b", "c"],
    }
    network = {
        "input_dim": 4,
        "layers": [{"units": 12, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
    }
    status, job = call(
        base,
        "POST",
        "/jobs",
        {"dataset": dataset, "network": network, "training": {"epochs": 20}},
        key,
    )
    assert status == 202, job
    model_id = finished_job(base, job["id"], key)["model_id"]
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        page.goto(f"{base}/#/trace/{model_id}")
        # It opens traced: zeros in, the first class as the target.
        page.wait_for_selector("#trace-svg")
        assert page.input_value("#trace-targets") == "[1,0,0]"
        assert page.locator("#trace-error").text_content() == ""
        assert page.locator("#trace-svg line.edge").count() == 4 * 12 + 12 * 3
        assert page.locator("#trace-svg text[data-weight]").count() == 0
        assert page.locator("#trace-weights tr[data-weight]").count() == 4 * 12 + 12 * 3
        assert "categorical_crossentropy" in (page.locator("#trace-numbers p").text_content() or "")
        assert errors == []
        browser.close()
