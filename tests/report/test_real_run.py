"""The report of a small real run (tiny profile, every stage real): run metadata at the top, no
absolute path of the run anywhere a reader looks (report and audit pages), the figures present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_real_run_reports_its_metadata_and_relative_paths(tiny_evaluation: tuple[Path, Path]) -> None:
    root, ev = tiny_evaluation
    report = json.loads((ev / "report.json").read_text())
    run = report["run"]
    assert run["run_dir"] == str(root) and run["frames_digest"] == report["config"]["frames_digest"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", run["date_utc"])
    md = (ev / "report.md").read_text()
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (ev / "report.html").read_text())
    for text in (md, html):
        assert str(root) not in text
    assert f"- data: frame store digest: {run['frames_digest']}" in md.split("## Results")[0]
    assert "- frames: frames (sha256:" in md and "classifier real f=0.5 s=0: classifier/real@0.5;" in md
    assert "### Generator of class consolidation, training fraction 0.5" in md
    audits = sorted(root.glob("audit/*/audit.md"))
    assert len(audits) == 2
    for a in audits:
        text = a.read_text()
        assert str(root) not in text and "- real frames: `frames` (sha256:" in text and "- synthetic set: `synthetic/" in text
    assert {"learning_curve", "roc"} <= {p.stem for p in (ev / "figures").glob("*.png")}
