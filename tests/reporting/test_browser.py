"""The reports in a real browser: headless Chromium over the DevTools protocol.

Skipped when Chromium is not installed (CI installs the Debian package ``chromium``).
The screenshots are saved in the test's tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reporting.cdp import Browser, find_chromium
from tests.reporting.conftest import ReportInputs

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

COLUMN_TEXT = 'Array.from(document.querySelectorAll("#cases tbody tr")).map(r => r.cells[{col}].textContent)'
HEADER_INDEX = 'Array.from(document.querySelectorAll("#cases thead th")).findIndex(h => h.textContent.trim() === "{name}")'


@pytest.fixture()
def browser(tmp_path: Path):
    opened = Browser(CHROMIUM, tmp_path / "profile")
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
    browser.evaluate('const box = document.querySelector("input[data-filter=cases]"); box.value = "case_0"; box.dispatchEvent(new Event("input")); 0')
    shown = browser.evaluate('Array.from(document.querySelectorAll("#cases tbody tr")).filter(r => r.style.display !== "none").map(r => r.cells[0].textContent)')
    assert shown and set(shown) == {"case_01", "case_02"}
    assert browser.evaluate("document.querySelectorAll('script').length") == 1  # the escaped case id added none
    browser.evaluate('document.querySelector("input[data-filter=cases]").value = ""; document.querySelector("input[data-filter=cases]").dispatchEvent(new Event("input")); window.scrollTo(0, 0); 0')
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
