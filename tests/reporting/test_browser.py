"""The reports in a real browser: headless Chromium driven by Selenium.

Skipped when Chromium or its chromedriver is not installed (CI installs the Debian packages
``chromium`` and ``chromium-driver``). The screenshots are saved in the test's tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reporting.browser import Browser, find_chromium
from tests.reporting.conftest import ReportInputs

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")

COLUMN_TEXT = 'Array.from(document.querySelectorAll("#cases tbody tr")).map(r => r.cells[{col}].textContent)'
HEADER_INDEX = 'Array.from(document.querySelectorAll("#cases thead th")).findIndex(h => h.textContent.trim() === "{name}")'


@pytest.fixture()
def browser(tmp_path: Path):
    opened = Browser(*CHROMIUM, tmp_path / "profile")
    yield opened
    opened.close()


def test_experiment_report_loads_sorts_and_filters(browser: Browser, experiment_report: Path, tmp_path: Path):
    browser.open(experiment_report.as_uri())
    assert browser.evaluate("document.title") == "unet - segmentation report"
    assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    col = browser.evaluate(HEADER_INDEX.format(name="hd95"))
    assert col > 0
    browser.click(f"#cases thead th:nth-child({col + 1})")
    ascending = [float(v) for v in browser.evaluate(COLUMN_TEXT.format(col=col))]
    assert ascending == sorted(ascending)
    browser.click(f"#cases thead th:nth-child({col + 1})")
    descending = [float(v) for v in browser.evaluate(COLUMN_TEXT.format(col=col))]
    assert descending == sorted(ascending, reverse=True)
    browser.type("input[data-filter=cases]", "case_0")
    shown = browser.evaluate(
        'Array.from(document.querySelectorAll("#cases tbody tr")).filter(r => r.style.display !== "none").map(r => r.cells[0].textContent)'
    )
    assert shown and set(shown) == {"case_01", "case_02"}
    assert browser.evaluate("document.querySelectorAll('script').length") == 1  # the escaped case id added none
    browser.type("input[data-filter=cases]", "")
    assert browser.evaluate('Array.from(document.querySelectorAll("#cases tbody tr")).every(r => r.style.display !== "none")')
    browser.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(tmp_path / "experiment.png")
    assert (tmp_path / "experiment.png").stat().st_size > 10_000
    assert browser.problems() == []


def test_index_loads_without_errors(browser: Browser, report_inputs: ReportInputs, tmp_path: Path):
    from pipeline.reporting.compare import write_comparison

    output = tmp_path / "index.html"
    write_comparison("synthetic", {"a": report_inputs.per_case, "b": report_inputs.per_case}, {"a": report_inputs.summary, "b": report_inputs.summary}, output)
    browser.open(output.as_uri())
    assert browser.evaluate("document.querySelectorAll('#ranking tbody tr').length") == 2
    browser.click("#tests thead th:nth-child(1)")
    browser.screenshot(tmp_path / "index.png")
    assert browser.problems() == []


def test_the_browser_reports_a_broken_page(browser: Browser, tmp_path: Path):
    """The harness itself: a console error, an uncaught exception, a missing file and a request
    off the page are all reported (else the empty lists above would prove nothing)."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><title>broken</title><img src='missing.png'><img src='http://127.0.0.1:9/off.png'>"
        "<script>console.error('boom');</script><script>throw new Error('uncaught');</script>",
        encoding="utf-8",
    )
    browser.open(page.as_uri())
    assert browser.evaluate("document.title") == "broken"
    found = "\n".join(browser.problems())
    assert "boom" in found and "uncaught" in found
    assert "missing.png" in found or "ERR_FILE_NOT_FOUND" in found
    assert "request off the page: http://127.0.0.1:9/off.png" in found
