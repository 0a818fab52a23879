"""Listing ingest inputs: a labels CSV cannot make ingest read outside its folder (issue 15, item 3)."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lusynth.data.ingest import IngestParams, ingest
from lusynth.data.sources import items_from_csv, items_from_folders


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(1, 255, (64, 64), dtype=np.uint8)).save(path)


@pytest.fixture
def never_open(monkeypatch: pytest.MonkeyPatch):
    """Fail loudly if any of the returned set's paths is opened (builtins.open, io.open, os.open)."""
    banned: set[Path] = set()

    def guard(fn):
        def wrapped(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and Path(file).resolve() in banned:
                raise AssertionError(f"opened {file}")
            return fn(file, *a, **k)
        return wrapped

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(os, "open", guard(os.open))
    return banned


def _data(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    _png(data / "good.png", 1)
    outside = tmp_path / "outside_secret.jpg"
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(outside)
    (data / "link.jpg").symlink_to(outside)
    rows = ["good.png,a,p1", "../outside_secret.jpg,a,p2", "/etc/passwd,a,p3", "link.jpg,a,p4"]
    (data / "labels.csv").write_text("path,label,patient_id\n" + "\n".join(rows) + "\n")
    return data / "labels.csv", outside


def test_csv_rows_outside_the_folder_are_refused_unopened(tmp_path, never_open) -> None:
    csv_path, outside = _data(tmp_path)
    never_open.update({outside.resolve(), Path("/etc/passwd").resolve()})
    rejected: list[dict[str, str]] = []
    items = items_from_csv(csv_path, IngestParams(), rejected)
    assert [i.display for i in items] == ["good.png"]
    assert [(r["file"], r["reason"]) for r in rejected] == [
        ("../outside_secret.jpg", "outside_data_folder"), ("/etc/passwd", "outside_data_folder"), ("link.jpg", "outside_data_folder")]
    assert "labels.csv row 3" in rejected[0]["detail"] and "--allow-outside-paths" in rejected[0]["detail"]
    assert "labels.csv row 5" in rejected[2]["detail"]


def test_allow_outside_paths_accepts_them(tmp_path) -> None:
    csv_path, outside = _data(tmp_path)
    csv_path.write_text("path,label,patient_id\ngood.png,a,p1\n../outside_secret.jpg,a,p2\n")
    rejected: list[dict[str, str]] = []
    items = items_from_csv(csv_path, IngestParams(allow_outside_paths=True), rejected)
    assert [i.path for i in items] == [(csv_path.parent / "good.png").resolve(), outside.resolve()]
    assert rejected == []  # link.jpg resolves to the listed outside file


def test_ingest_report_records_the_refusal(tmp_path, never_open) -> None:
    csv_path, outside = _data(tmp_path)
    never_open.add(outside.resolve())
    rows = [f"img/{c}{p}.png,{c},{c}{p}" for c in "ab" for p in range(3)]
    for i, r in enumerate(rows):  # a seed per image: hash(r) % 1000 varies per process and collided (two equal images, one dropped)
        _png(csv_path.parent / r.split(",")[0], 100 + i)
    csv_path.write_text("path,label,patient_id\n" + "\n".join(rows + ["../outside_secret.jpg,a,px", "link.jpg,b,py"]) + "\n")
    res = ingest(str(csv_path), tmp_path / "store", params=IngestParams(positive_class="a"))
    by_file = {r["file"]: r["reason"] for r in res.report["rejected"]}
    assert by_file == {"../outside_secret.jpg": "outside_data_folder", "link.jpg": "outside_data_folder", "good.png": "no_label"}
    assert res.report["files_accepted"] == 6


def test_class_folder_symlink_out_is_refused(tmp_path, never_open) -> None:
    outside = tmp_path / "secret.png"
    _png(outside, 3)
    never_open.add(outside.resolve())
    _png(tmp_path / "d" / "a" / "ok.png", 4)
    (tmp_path / "d" / "a" / "link.png").symlink_to(outside)
    rejected: list[dict[str, str]] = []
    items = items_from_folders(tmp_path / "d", rejected)
    assert [i.display for i in items] == ["a/ok.png"]
    assert [(r["file"], r["reason"]) for r in rejected] == [("a/link.png", "outside_data_folder")]
