"""The ingest report artefact: every input accounted for (accepted frames per class and split, every
rejected file and dropped duplicate frame with its reason), as JSON and as a readable summary.

The report names files, so it is written beside the frame store, for the operator. This is the one
module that names the report's files.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lusynth.atomic import atomic_write_json, atomic_write_text

REPORT_JSON = "ingest_report.json"
REPORT_TXT = "ingest_report.txt"


@dataclass
class IngestReport:
    """The ingest report artefact: every input accounted for (accepted or rejected with a reason)."""

    path: Path
    report: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, report_dir: str | os.PathLike[str]) -> IngestReport:
        """Read a report directory written by ingest."""
        from lusynth.util import read_json

        d = Path(report_dir)
        return cls(path=d, report=read_json(d / REPORT_JSON, what="an ingest report", hint="run `lusynth ingest` to write one"))

    def summary(self) -> str:
        """The readable summary (:func:`summarise`)."""
        return summarise(self.report)


def _writable(obj: Any) -> Any:
    """``obj`` with lone surrogates (file-name bytes that are not UTF-8) escaped, so it encodes as UTF-8."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(obj, dict):
        return {_writable(k): _writable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_writable(v) for v in obj]
    return obj


def escape(text: object) -> str:
    """``text`` for one line of the text report: control and invisible format characters (a newline
    or a right-to-left override in a file name) and backslashes become escapes such as ``\\n``, so a
    hostile name cannot add lines or disguise itself."""
    s = str(text)
    if not any(unicodedata.category(ch) in _UNSAFE for ch in s):
        return s
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in _UNSAFE:
            out.append(repr(ch)[1:-1] if ch in "\n\r\t" else f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def write_report(report_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON and as its readable summary into ``report_dir``."""
    report = _writable(report)
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_dir / REPORT_JSON, report)
    atomic_write_text(report_dir / REPORT_TXT, summarise(report))


def summarise(report: dict[str, Any]) -> str:
    """A readable summary of an ingest report."""
    lines = [f"lusynth ingest: {report.get('status', '?')}  source: {escape(report.get('source'))}  labels: {escape(report.get('labels'))}"]
    if report.get("status") == "failed":
        lines.append(f"error: {escape(report.get('error'))}")
    if "counts" in report:
        classes = report["classes"]
        lines.append(
            f"{report['frames']} frames from {report['files_accepted']} files in {report['seconds']} s "
            f"({report['frames_per_second']} frames/s); positive class: {report['positive_class']}"
        )
        lines.append(f"{'split':<9}" + "".join(f"{c[:22]:>24}" for c in classes) + "   (frames / patients)")
        for s in report["patients"]:  # train / val / holdout, or the K-fold store's test folds fold0, fold1, ...
            cells = "".join(
                f"{str(report['counts'].get(s, {}).get(c, 0)) + ' / ' + str(report['patients'][s][c]):>24}" for c in classes
            )
            lines.append(f"{s:<9}{cells}")
        if report.get("patients_with_two_labels"):
            lines.append(f"patients whose clips carry two labels (kept, labels are per clip): {len(report['patients_with_two_labels'])}")
    rej = report.get("rejected", [])
    lines.append(f"rejected files: {len(rej)}" + (f"  {report.get('rejected_by_reason')}" if rej else ""))
    for r in rej[:50]:
        lines.append(f"  {escape(r['file'])}: {r['reason']}" + (f" — {escape(r['detail'])}" if r.get("detail") else ""))
    if len(rej) > 50:
        lines.append(f"  ... {len(rej) - 50} more in {REPORT_JSON}")
    dups = report.get("duplicates", [])
    lines.append(f"duplicate frames dropped: {len(dups)}")
    for d in dups[:10]:
        lines.append(f"  {escape(d['file'])}#{d['frame_index']} = {escape(d['duplicate_of'])}")
    fr = report.get("frame_rejects", [])
    if fr:
        lines.append(f"frames rejected inside accepted files: {len(fr)}")
    return "\n".join(lines) + "\n"
