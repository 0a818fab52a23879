"""The report as a person sees it, in a real browser (headless Chromium, Debian's `chromium`):
at 1280 px nothing runs off the page sideways and every figure loads. `.ci/run` installs chromium;
without it these tests skip and say so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report.browser import chromium, measure, screenshot

pytestmark = [pytest.mark.skipif(chromium() is None, reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)"),
              pytest.mark.slow]


def test_the_report_fits_1280_px_and_every_image_loads(tiny_evaluation: tuple[Path, Path]) -> None:
    _root, ev = tiny_evaluation
    html = ev / "report.html"
    m = measure(html, width=1280)
    assert m["innerWidth"] == 1280
    # no horizontal scrolling: the document is no wider than the viewport (less its scroll bar)
    assert m["scrollWidth"] <= m["clientWidth"] <= 1280, m
    assert m["overflowing"] == [], m["overflowing"]
    n_figures = len(list((ev / "figures").glob("*.png")))
    assert n_figures >= 6 and m["images"] == n_figures, m
    assert m["broken"] == [], m["broken"]
    if os.environ.get("LUSYNTH_REPORT_SHOT"):  # a picture for a person: LUSYNTH_REPORT_SHOT=/tmp/shots/report.png
        screenshot(html, Path(os.environ["LUSYNTH_REPORT_SHOT"]), width=1280, height=2400)


def test_the_probe_sees_a_page_that_overflows_or_misses_an_image(tmp_path: Path) -> None:
    """The browser check can fail: a table wider than the window and a missing image are both reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><html><body><table style='width:2000px'><tr><td>wide</td></tr></table>"
                    "<img alt='gone' src='missing.png'></body></html>")
    m = measure(page, width=1280)
    assert m["scrollWidth"] > 1280
    assert any(x.startswith("TABLE") for x in m["overflowing"])
    assert m["broken"] == ["gone"]
