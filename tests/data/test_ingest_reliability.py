"""Ingest under careless and hostile inputs (issue 15, items 8 and 9): decompression bombs are
rejected from the header; in folder mode every entry gets a report line with a distinct reason;
CSV dialects and encodings; hostile file names cannot break the text report."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lusynth.data.ingest import IngestParams, ingest
from lusynth.errors import InputError
from tests.data.corpus import BOMB_SIDE, bomb_png, build_hostile_folder, build_mutated_corpus, huge_video


def _png(path: Path, seed: int, size: tuple[int, int] = (72, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(1, 255, size, dtype=np.uint8)).save(path)


def _good_patients(root: Path) -> int:
    """Three patients per class a and b, one PNG each; returns the number of files."""
    for c in "ab":
        for p in range(3):
            _png(root / c / f"{c}{p}" / "0.png", zlib.crc32(f"{c}{p}".encode()))
    return 6


def _by_file(report: dict) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in report["rejected"]}


def test_bombs_are_rejected_from_the_header_before_decoding(tmp_path) -> None:
    data = tmp_path / "data"
    _good_patients(data)
    bomb = bomb_png(data / "a" / "a0" / "bomb.png", BOMB_SIDE, BOMB_SIDE)
    assert len(bomb) < 200_000  # ~140 KB on disk, 144 Mpixels decoded
    # the header claims 12000 x 12000, the pixels are cut off: only a decoder would notice ("truncated")
    (data / "a" / "a1" / "header_only.png").write_bytes(bomb[:4096])
    huge_video(data / "b" / "b0" / "huge.avi")
    res = ingest(str(data), tmp_path / "s", params=IngestParams(positive_class="a"))
    got = _by_file(res.report)
    assert got == {"a/a0/bomb.png": "too_many_pixels", "a/a1/header_only.png": "too_many_pixels",
                   "b/b0/huge.avi": "too_many_pixels"}
    detail = {r["file"]: r["detail"] for r in res.report["rejected"]}["a/a0/bomb.png"]
    assert "12000x12000" in detail and "max_pixels" in detail


def test_max_pixels_is_configurable(tmp_path) -> None:
    data = tmp_path / "data"
    _good_patients(data)
    _png(data / "a" / "a0" / "big.png", 1, size=(200, 100))  # 20,000 pixels
    res = ingest(str(data), tmp_path / "s", params=IngestParams(positive_class="a", max_pixels=10_000))
    assert _by_file(res.report) == {"a/a0/big.png": "too_many_pixels"}
    with pytest.raises(ValueError, match="max_pixels"):
        IngestParams(max_pixels=0)


def test_folder_mode_gives_every_entry_a_report_line(tmp_path) -> None:
    data = tmp_path / "data"
    n_good = _good_patients(data)
    expected = build_hostile_folder(data)
    res = ingest(str(data), tmp_path / "s", params=IngestParams(positive_class="a"))
    assert _by_file(res.report) == expected
    assert res.report["files_accepted"] == n_good
    assert res.report["files_seen"] == n_good + len(expected)
    json.loads((res.report_dir / "ingest_report.json").read_text())  # valid JSON, non-UTF-8 name included
    txt = (res.report_dir / "ingest_report.txt").read_text()
    lines = [ln for ln in txt.splitlines() if ln.startswith("  ")]
    # one line per rejected file: the newline in a name is escaped, not written
    assert len(lines) == len(expected)
    assert "  b/b0/bad\\nname.png: unreadable" in txt


def test_semicolon_and_tab_csvs_are_read(tmp_path) -> None:
    _good_patients(tmp_path)
    rows = [f"{c}/{c}{p}/0.png" for c in "ab" for p in range(3)]
    for delim in (";", "\t"):
        lines = [delim.join(["path", "label", "patient_id"])] + [delim.join([r, r[0], r.split("/")[1]]) for r in rows]
        (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
        res = ingest(str(tmp_path / "labels.csv"), tmp_path / f"s{ord(delim)}", params=IngestParams(positive_class="a"))
        assert res.report["files_accepted"] == 6


def test_latin1_csv_fails_with_a_report_naming_the_row_and_the_fix(tmp_path) -> None:
    _good_patients(tmp_path)
    text = "path,label,patient_id\na/a0/0.png,a,a0\na/a1/0.png,a,Jos\xe9\n"
    (tmp_path / "labels.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match=r"labels.csv row 3: not UTF-8 .*iconv -f latin1 -t utf-8") as exc:
        ingest(str(tmp_path / "labels.csv"), tmp_path / "s", params=IngestParams(positive_class="a"))
    assert "\n" not in str(exc.value)
    rep = json.loads((tmp_path / "s-report" / "ingest_report.json").read_text())
    assert rep["status"] == "failed" and "row 3" in rep["error"]
    assert not (tmp_path / "s").exists()


def test_csv_syntax_errors_name_the_row(tmp_path) -> None:
    (tmp_path / "labels.csv").write_bytes(b"path,label,patient_id\nx.png,a,p\0\n")
    with pytest.raises(InputError, match=r"labels.csv row 2: holds NUL bytes"):
        ingest(str(tmp_path / "labels.csv"), tmp_path / "s", params=IngestParams(positive_class="a"))
    assert json.loads((tmp_path / "s-report" / "ingest_report.json").read_text())["status"] == "failed"


def test_missing_columns_in_a_csv_also_leave_a_report(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("file;diagnosis\na.png;x\n")
    with pytest.raises(InputError, match="missing column"):
        ingest(str(tmp_path / "labels.csv"), tmp_path / "s", params=IngestParams(positive_class="x"))
    assert json.loads((tmp_path / "s-report" / "ingest_report.json").read_text())["status"] == "failed"


def test_damaged_copies_of_every_accepted_file_never_crash_a_reader(tmp_path) -> None:
    """Cut and overwritten copies of every decodable corpus file: frames or RejectedInput, nothing else."""
    from lusynth.data.ingest import _decode
    from lusynth.data.sources import SourceItem
    from lusynth.errors import RejectedInput

    mutated = build_mutated_corpus(tmp_path)
    assert len(mutated) >= 60
    params = IngestParams()
    for rel in mutated:
        try:
            _decode(SourceItem(tmp_path / rel, rel, "a", "p", "v"), params)
        except RejectedInput:
            pass


def test_cli_ingest_of_the_hostile_folder_exits_cleanly(tmp_path, capsys) -> None:
    """Through the CLI (stage key included: it hashes the source's file names, one of them not UTF-8)."""
    from lusynth.cli import main

    data = tmp_path / "data"
    _good_patients(data)
    build_hostile_folder(data)
    # three patients per class: the single split (K-fold needs K + 2 per class; tests/data/test_folds.py)
    rc = main(["ingest", str(data), "--out", str(tmp_path / "s"), "--positive-class", "a", "--set", "experiment.folds=1", "--no-track",
               "--no-cache", "--quiet"])
    assert rc == 0, capsys.readouterr().err
