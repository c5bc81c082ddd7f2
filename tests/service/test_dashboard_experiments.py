"""The dashboard's experiment pages in a real browser (headless Chromium, Playwright):
the compare view of jobs a real worker trained (their curves on one chart, their specs
side by side with the rows that differ marked, reached from the jobs list's
checkboxes), and the sweep pages (the trials of a real sweep, their curves with the
best one highlighted, the metric against each searched parameter, live refresh that
stops when the sweep ends or the page is left, the cancel button)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.service.http import call, finished_job
from tests.service.processes import ROOT, wait_for
from tests.service.test_dashboard import _open_dashboard, playwright

XOR = {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [[0], [1], [1], [0]]}
FINISHED = ("succeeded", "failed", "cancelled")


def flat_spec(value: Any, path: str = "") -> dict[str, Any]:
    """The spec paths the compare view shows: objects by key, lists of objects by index,
    other values (lists of numbers too) as they are."""
    out: dict[str, Any] = {}
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for i, item in enumerate(value):
            out.update(flat_spec(item, f"{path}[{i}]"))
    elif isinstance(value, dict) and value:
        for name, item in value.items():
            out.update(flat_spec(item, f"{path}.{name}" if path else name))
    else:
        out[path] = value
    return out


def _xor_job(base: str, key: str, units: int, learning_rate: float) -> int:
    network = {
        "input_dim": 2,
        "layers": [
            {"units": units, "activation": "tanh"},
            {"units": 1, "activation": "sigmoid"},
        ],
    }
    training = {"epochs": 150, "optimizer": {"name": "adam", "learning_rate": learning_rate}}
    status, job = call(
        base, "POST", "/jobs", {"dataset": XOR, "network": network, "training": training}, key
    )
    assert status == 202, job
    return int(job["id"])


def test_the_compare_view_overlays_curves_and_marks_differing_spec_rows(
    live_api: tuple[str, str],
) -> None:
    base, key = live_api
    ids = [
        _xor_job(base, key, 4, 0.01),
        _xor_job(base, key, 4, 0.05),
        _xor_job(base, key, 8, 0.1),
    ]
    for job_id in ids:
        assert finished_job(base, job_id, key)["status"] == "succeeded"
    specs = [call(base, "GET", f"/jobs/{i}/spec", key=key)[1] for i in ids]
    flat = [flat_spec(spec) for spec in specs]
    paths = list(dict.fromkeys(path for f in flat for path in f))
    differing = {p for p in paths if len({json.dumps(f.get(p)) for f in flat}) > 1}
    assert differing == {"network.layers[0].units", "training.optimizer.learning_rate"}
    lengths = [
        len(call(base, "GET", f"/jobs/{i}/curve?points=2000", key=key)[1]["epochs"]) for i in ids
    ]
    assert lengths == [150, 150, 150]

    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        for job_id in ids:
            page.wait_for_selector(f"#jobs tr[data-job='{job_id}'] input.pick")
        assert page.locator("#compare").is_disabled()
        for job_id in reversed(ids):
            page.check(f"#jobs tr[data-job='{job_id}'] input.pick")
        # The list redraws its rows every 2 s; the ticks stay.
        page.wait_for_timeout(2500)
        assert page.locator("#jobs input.pick:checked").count() == 3
        assert page.locator("#compare").text_content() == "Compare (3)"
        page.click("#compare")
        page.wait_for_url(re.compile(rf".*#/compare/{ids[0]},{ids[1]},{ids[2]}$"))
        page.wait_for_selector("#compare-chart canvas")

        # One uPlot series per job (after the x series), named by the job's id.
        labels = page.locator("#compare-chart .u-legend .u-series .u-label").all_text_contents()
        assert labels == ["epoch"] + [f"#{i}" for i in ids]
        assert page.locator("#compare-chart").get_attribute("data-series") == "3"
        assert page.locator("#compare-chart").get_attribute("data-points") == str(sum(lengths))
        drawn = page.evaluate(
            """() => {
                const canvas = document.querySelector('#compare-chart canvas');
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
        # With the batch GET /jobs?ids=, the specs come with the jobs: no GET per spec.
        batch = call(base, "GET", "/jobs?ids=" + ",".join(map(str, ids)), key=key)[0]
        specs_asked = [u for u in requests if u.endswith("/spec")]
        assert len(specs_asked) == (0 if batch == 200 else 3), (batch, specs_asked)
        statuses = page.locator("#compare-jobs tr[data-job] td.status").all_text_contents()
        assert statuses == ["succeeded"] * 3

        # Every spec path, in order; the differing rows carry the class and the marker.
        rows = page.locator("#spec-diff tr[data-path]")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.path)") == paths
        shown_differing = page.locator("#spec-diff tr.differs").evaluate_all(
            "rows => rows.map(r => r.dataset.path)"
        )
        assert set(shown_differing) == differing
        for path in paths:
            row = page.locator(f"#spec-diff tr[data-path='{path}']")
            marker = row.locator(".marker").text_content()
            assert marker == ("≠" if path in differing else ""), path
            assert row.locator(".marker").is_visible() or path not in differing
        rate = page.locator("#spec-diff tr[data-path='training.optimizer.learning_rate'] td")
        assert rate.all_text_contents() == ["0.01", "0.05", "0.1"]
        units = page.locator("#spec-diff tr[data-path='network.layers[0].units'] td")
        assert units.all_text_contents() == ["4", "4", "8"]
        header = page.locator("#spec-diff tr").first.locator("th").all_text_contents()
        assert header == ["spec path"] + [f"#{i}" for i in ids]
        # The same rows, unmarked, are hidden on request.
        page.check("#only-differences")
        visible = [r for r in rows.all() if r.is_visible()]
        assert sorted(r.get_attribute("data-path") or "" for r in visible) == sorted(differing)

        # A bad address says what it wants rather than drawing something else.
        page.goto(f"{base}/#/compare/{ids[0]},x")
        page.wait_for_selector("#view p.error")
        assert "job ids separated by commas" in (page.locator("#view p.error").text_content() or "")
        assert errors == []
        browser.close()


# --- sweeps ----------------------------------------------------------------------


def _sweeps_api(base: str, key: str) -> None:
    status, answer = call(base, "GET", "/sweeps", key=key)
    if status == 404:
        pytest.skip("this service has no sweeps API (GET /sweeps answered 404)")
    assert status == 200, answer


def _iris(base: str, key: str) -> int:
    upload = urllib.request.Request(
        f"{base}/datasets?name=iris&target=species",
        data=(ROOT / "examples" / "iris.csv").read_bytes(),
        method="POST",
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(upload) as response:
        return int(json.loads(response.read())["id"])


def _sweep(base: str, key: str, dataset_id: int, trials: int, epochs: int) -> dict[str, Any]:
    body = {
        "dataset_id": dataset_id,
        "network": {"layers": [{"units": 8, "activation": "relu"}]},
        "training": {
            "epochs": epochs,
            "batch_size": 16,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "normalize": "standardize",
            "validation_split": 0.2,
        },
        "search_space": {
            "training.optimizer.learning_rate": {"log_uniform": [1e-3, 1e-1]},
            "network.layers[0].units": {"choice": [4, 8, 16]},
        },
        "trials": trials,
        "parallel": 2,
        "sampler": {"name": "random", "seed": 7},
        "metric": "val_loss",
        "direction": "minimize",
    }
    status, sweep = call(base, "POST", "/sweeps", body, key)
    assert status in (201, 202), sweep
    return dict(sweep)


def _finished_sweep(base: str, key: str, sweep_id: int, timeout: float) -> Any:
    def ended() -> Any:
        sweep = call(base, "GET", f"/sweeps/{sweep_id}", key=key)[1]
        return sweep if sweep["status"] in FINISHED else None

    return wait_for(ended, timeout, 0.5, f"sweep {sweep_id} to end")


def test_the_sweep_page_follows_a_sweep_to_its_end(live_api: tuple[str, str]) -> None:
    base, key = live_api
    _sweeps_api(base, key)
    sweep = _sweep(base, key, _iris(base, key), trials=4, epochs=150)
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.click("header nav a[href='#/sweeps']")
        page.wait_for_selector(f"#sweeps tr[data-sweep='{sweep['id']}']")
        page.click(f"#sweeps tr[data-sweep='{sweep['id']}'] a")
        page.wait_for_url(re.compile(rf".*#/sweeps/{sweep['id']}$"))
        page.wait_for_selector("#trials")
        # Opened while it runs: the cancel button shows, and the page follows it to its end.
        first = page.evaluate(
            "[document.getElementById('status').textContent,"
            " !document.getElementById('cancel-sweep').hidden]"
        )
        if first[0] in ("queued", "running"):
            assert first[1], first
        page.wait_for_function(
            "document.getElementById('status').textContent === 'succeeded'", timeout=240_000
        )
        done = call(base, "GET", f"/sweeps/{sweep['id']}", key=key)[1]
        assert done["status"] == "succeeded", done
        trials = done["trials"]
        best = done["best"]
        assert len(trials) == 4 and best is not None
        page.wait_for_function(
            f"document.querySelectorAll('#trials tr[data-trial]').length === {len(trials)}"
        )
        assert not page.locator("#cancel-sweep").is_visible()
        assert page.locator("#sweep-metric").text_content() == "val_loss (minimize)"
        assert f"job #{best['job_id']}" in (page.locator("#sweep-best").text_content() or "")

        # The trials table: one row per trial, linked to its job, its state as its class.
        for trial in trials:
            row = page.locator(f"#trials tr[data-trial='{trial['number']}']")
            assert row.locator(f"a[href='#/jobs/{trial['job_id']}']").count() == 1
            classes = (row.get_attribute("class") or "").split()
            assert trial["state"] in classes
            assert ("best" in classes) == (trial["job_id"] == best["job_id"])
            assert row.locator("td.state").text_content() == trial["state"]
            if trial["state"] == "pruned":
                colour = row.evaluate("r => getComputedStyle(r).color")
                assert colour == "rgb(154, 160, 168)", colour

        # The curves: one series per trial with epochs, the best one wider and coloured.
        chart = page.locator("#sweep-chart")
        with_epochs = [t for t in trials if t["epochs_completed"] > 0]
        page.wait_for_function(
            f"document.getElementById('sweep-chart').dataset.series === '{len(with_epochs)}'"
        )
        assert chart.get_attribute("data-best") == str(best["job_id"])
        labels = chart.locator(".u-legend .u-series .u-label").all_text_contents()
        assert len(labels) == len(with_epochs) + 1
        assert [label for label in labels if label.endswith("best")] == [
            f"trial {best['trial_number']} (#{best['job_id']}) best"
        ]
        assert page.locator("#sweep-chart canvas").count() == 1

        # One scatter per searched parameter: log x for the log-uniform rate,
        # categories for the choice of units; one point per trial with a value.
        valued = [t for t in trials if t["value"] is not None]
        scales = {
            "training.optimizer.learning_rate": "log",
            "network.layers[0].units": "category",
        }
        for path, scale in scales.items():
            plot = page.locator(f"svg.scatter[data-param='{path}']")
            assert plot.get_attribute("data-scale") == scale
            assert plot.locator("circle.trial").count() == len(valued)
            marked = plot.locator("circle.best")
            assert marked.count() == 1
            assert marked.get_attribute("data-trial") == str(best["trial_number"])

        # Ended: no more requests for it.
        page.wait_for_timeout(1000)
        asked = len([u for u in requests if f"/sweeps/{sweep['id']}" in u])
        page.wait_for_timeout(4000)
        assert len([u for u in requests if f"/sweeps/{sweep['id']}" in u]) == asked

        # The best complete trials (up to five, best first) open in the compare view.
        complete = sorted(
            (t for t in trials if t["state"] == "complete" and t["value"] is not None),
            key=lambda t: (t["value"], t["number"]),
        )[:5]
        if len(complete) < 2:
            assert page.locator("#compare-best").count() == 0
        else:
            page.click("#compare-best")
            ids = ",".join(str(t["job_id"]) for t in complete)
            page.wait_for_url(re.compile(rf".*#/compare/{ids}$"))
            page.wait_for_selector("#compare-chart canvas")
            series = page.locator("#compare-chart").get_attribute("data-series")
            assert series == str(len(complete))
        assert errors == []
        browser.close()


def test_the_sweep_page_stops_when_left_and_cancels(live_api: tuple[str, str]) -> None:
    base, key = live_api
    _sweeps_api(base, key)
    sweep = _sweep(base, key, _iris(base, key), trials=50, epochs=100_000)
    with playwright.sync_playwright() as p:
        browser, page, errors = _open_dashboard(p, base, key)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{base}/#/sweeps/{sweep['id']}")
        page.wait_for_selector("#cancel-sweep", state="visible")
        # Playwright hands over its events only while the test calls it: wait through it.
        for _ in range(200):
            if len([u for u in requests if u.endswith(f"/sweeps/{sweep['id']}")]) >= 2:
                break
            page.wait_for_timeout(100)
        else:
            raise AssertionError("the page did not refresh the sweep within 20 s")
        # Left for the jobs list: the sweep is no longer asked for.
        page.click("header nav a[href='#/jobs']")
        page.wait_for_selector("#jobs")
        asked = len([u for u in requests if f"/sweeps/{sweep['id']}" in u])
        page.wait_for_timeout(4000)
        assert len([u for u in requests if f"/sweeps/{sweep['id']}" in u]) == asked

        page.goto(f"{base}/#/sweeps/{sweep['id']}")
        page.wait_for_selector("#cancel-sweep", state="visible")
        page.click("#cancel-sweep")
        page.wait_for_function(
            "document.getElementById('status').textContent === 'cancelled'", timeout=60_000
        )
        assert not page.locator("#cancel-sweep").is_visible()
        assert errors == []
        browser.close()
    assert _finished_sweep(base, key, sweep["id"], 30)["status"] == "cancelled"
