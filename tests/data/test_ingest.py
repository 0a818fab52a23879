"""The ingest stage end to end: phantom, CSV and folder sources, bad inputs, privacy, determinism."""

from __future__ import annotations

import csv
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lusynth.cli import main
from lusynth.data.framestore import open_store
from lusynth.data.ingest import IngestParams, ingest
from lusynth.data.phantom import PhantomParams
from lusynth.errors import InputError
from tests.data.corpus import DICOM_PHI, build_bad_input_corpus

SMALL_PHANTOM = PhantomParams(patients=12, clips_per_patient=2, frames_per_clip=4)


def _noise_png(path: Path, seed: int, size: tuple[int, int] = (72, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(1, 255, size, dtype=np.uint8)).save(path)


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def _all_store_bytes(store: Path) -> bytes:
    return b"".join((store / f).read_bytes() for f in ("frames.npy", "manifest.csv", "header.json"))


@pytest.fixture(scope="module")
def phantom_ingest(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ingest") / "store"
    return ingest(None, out, params=IngestParams(train_fractions=(0.5, 1.0)), phantom=SMALL_PHANTOM)


def test_phantom_store_has_patient_level_splits(phantom_ingest) -> None:
    store = open_store(phantom_ingest.store)
    m = store.manifest
    assert store.classes == ["consolidation", "no_consolidation"]
    assert store.header["positive_class"] == "consolidation"
    assert len(store) == 12 * 2 * 4 == phantom_ingest.report["frames"]
    assert store.frames.shape[1:] == (64, 64) and store.frames.dtype == np.uint8
    # no patient in two splits
    assert (m.groupby("patient_id")["split"].nunique() == 1).all()
    # every class in every split
    for split in ("train", "val", "holdout"):
        assert set(m.loc[m.split == split, "label"]) == set(store.classes)
    # nested fractions: 0.5 is a subset of 1.0, both classes present in 0.5
    half, full = store.indices(split="train", fraction=0.5), store.indices(split="train", fraction=1.0)
    assert set(half) < set(full) and set(full) == set(store.indices(split="train"))
    assert set(m.loc[half, "label"]) == set(store.classes)
    assert m["train_fraction"].astype(str).eq("").sum() == (m.split != "train").sum()


def test_frame_store_holds_no_original_names(phantom_ingest) -> None:
    text = (phantom_ingest.store / "manifest.csv").read_text() + (phantom_ingest.store / "header.json").read_text()
    assert "PAT-" not in text and ".png" not in text and ".mp4" not in text and ".gif" not in text
    m = open_store(phantom_ingest.store).manifest
    assert m.patient_id.str.match(r"^p-[0-9a-f]{16}$").all()
    assert m.video_id.str.match(r"^v-[0-9a-f]{16}$").all()


def test_report_accounts_for_every_file(phantom_ingest) -> None:
    rep = json.loads((phantom_ingest.report_dir / "ingest_report.json").read_text())
    assert rep["status"] == "ok" and rep["rejected"] == [] and rep["duplicates"] == []
    assert rep["files_seen"] == rep["files_accepted"]
    txt = (phantom_ingest.report_dir / "ingest_report.txt").read_text()
    assert "holdout" in txt and "rejected files: 0" in txt
    # the report is beside the store, not inside it
    assert not (phantom_ingest.store / "ingest_report.json").exists()


def test_same_inputs_give_byte_identical_store(phantom_ingest, tmp_path) -> None:
    again = ingest(None, tmp_path / "again", params=IngestParams(train_fractions=(0.5, 1.0)), phantom=SMALL_PHANTOM)
    assert _all_store_bytes(again.store) == _all_store_bytes(phantom_ingest.store)
    other_seed = ingest(None, tmp_path / "seed1", params=IngestParams(seed=1), phantom=SMALL_PHANTOM)
    assert open_store(other_seed.store).digest != open_store(phantom_ingest.store).digest


def test_another_key_gives_other_pseudonyms(phantom_ingest, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LUSYNTH_PSEUDONYM_KEY", "another-key-0123456789abcdef")
    other = ingest(None, tmp_path / "k2", params=IngestParams(train_fractions=(0.5, 1.0)), phantom=SMALL_PHANTOM)
    a = set(open_store(phantom_ingest.store).manifest.patient_id)
    b = set(open_store(other.store).manifest.patient_id)
    assert a.isdisjoint(b)


def _corpus_with_csv(root: Path) -> tuple[dict[str, str | None], Path]:
    expected = build_bad_input_corpus(root)
    rows = []
    # the corpus files all belong to two patients of class "a"; good noise PNGs give both classes 3+ patients
    for i, rel in enumerate(sorted(expected)):
        rows.append({"path": rel, "label": "a", "patient_id": f"corpus-{i % 2}", "extra": "ignored"})
    for k in range(8):
        for label in ("a", "b"):
            rel = f"good/{label}/{k}.png"
            _noise_png(root / rel, seed=_seed(label, k))
            rows.append({"path": rel, "label": label, "patient_id": f"{label}-{k}", "extra": ""})
    rows.append({"path": "missing/ghost.png", "label": "a", "patient_id": "x", "extra": ""})
    rows.append({"path": "good/a/0.png", "label": "a", "patient_id": "a-0", "extra": ""})  # repeated row
    _noise_png(root / "unlisted" / "stray.png", seed=99)
    csv_path = root / "labels.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "patient_id", "extra"])
        w.writeheader()
        w.writerows(rows)
    return expected, csv_path


def test_bad_input_corpus_every_file_accounted_for(tmp_path) -> None:
    expected, csv_path = _corpus_with_csv(tmp_path / "corpus")
    result = ingest(str(csv_path), tmp_path / "store", params=IngestParams(positive_class="b"))
    rep = result.report
    rejected = {r["file"]: r for r in rep["rejected"]}
    for rel, reason in expected.items():
        if reason is None:
            # accepted, or dropped because its pixels equal an earlier file's (reported as such)
            assert rel not in rejected or rejected[rel]["reason"] == "duplicate", (rel, rejected.get(rel))
        else:
            assert rel in rejected, rel
            assert rejected[rel]["reason"] == reason, (rel, rejected[rel])
    assert rejected["missing/ghost.png"]["reason"] == "missing_file"
    assert rejected["good/a/0.png"]["reason"] == "duplicate_row"
    assert rejected["unlisted/stray.png"]["reason"] == "no_label"
    # files accepted + files rejected = every file listed or found
    n_files = len(expected) + 16 + 1  # corpus + good PNGs + the unlisted stray (ghost and repeat are rows, not files)
    assert rep["files_accepted"] + sum(1 for r in rep["rejected"] if r["reason"] not in ("missing_file", "duplicate_row")) == n_files
    # identical pixels in several corpus files are reported, each naming the file it repeats
    assert rep["duplicates"] and all("#" in d["duplicate_of"] for d in rep["duplicates"])
    # DICOM header values and file names never reach the store
    store_text = "".join((result.store / f).read_text() for f in ("manifest.csv", "header.json"))
    for value in DICOM_PHI.values():
        assert value not in store_text
    assert ".dcm" not in store_text and "corpus-" not in store_text
    # the readable report names the rejected files with reasons
    txt = (result.report_dir / "ingest_report.txt").read_text()
    assert "images/truncated.png: truncated" in txt


def test_class_subfolders(tmp_path) -> None:
    for label in ("normal", "abnormal"):
        for patient in range(4):
            for k in range(2):
                _noise_png(tmp_path / "data" / label / f"{label}-pt{patient}" / f"{k}.png", seed=_seed(label, patient, k))
    _noise_png(tmp_path / "data" / "loose.png", seed=5)
    # one patient folder name under both classes is one patient whose clips carry two labels
    _noise_png(tmp_path / "data" / "abnormal" / "normal-pt0" / "9.png", seed=7)
    res = ingest(str(tmp_path / "data"), tmp_path / "s", params=IngestParams(positive_class="abnormal"))
    store = open_store(res.store)
    assert store.classes == ["abnormal", "normal"]  # class names come from the data
    assert store.manifest.patient_id.nunique() == 8
    assert len(res.report["patients_with_two_labels"]) == 1
    assert {r["file"]: r["reason"] for r in res.report["rejected"]} == {"loose.png": "no_label"}


def test_csv_missing_columns_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("file,diagnosis\na.png,x\n")
    with pytest.raises(InputError, match=r"labels.csv: missing column\(s\) 'path'.*'label'.*'patient_id'.*has \['file', 'diagnosis'\]"):
        ingest(str(tmp_path / "labels.csv"), tmp_path / "s", params=IngestParams(positive_class="x"))
    assert not (tmp_path / "s").exists()


def test_configurable_columns(tmp_path) -> None:
    rows = []
    for label in ("yes", "no"):
        for p in range(3):
            rel = f"img/{label}{p}.png"
            _noise_png(tmp_path / rel, seed=_seed(label, p))
            rows.append(f"{rel},{label},{label}{p}")
    (tmp_path / "meta.csv").write_text("file,diagnosis,subject\n" + "\n".join(rows) + "\n")
    params = IngestParams(path_column="file", label_column="diagnosis", patient_column="subject", positive_class="yes")
    res = ingest(str(tmp_path), tmp_path / "s", params=IngestParams(**{**params.__dict__, "labels_csv": "meta.csv"}))
    assert open_store(res.store).header["counts"]["holdout"] == {"no": 1, "yes": 1}


def test_everything_rejected_fails_with_report(tmp_path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "x.png").write_bytes(b"")
    (tmp_path / "data" / "a" / "y.png").write_text("not a png")
    with pytest.raises(InputError, match="every input was rejected"):
        ingest(str(tmp_path / "data"), tmp_path / "s", params=IngestParams(positive_class="a"))
    assert not (tmp_path / "s").exists()
    rep = json.loads((tmp_path / "s-report" / "ingest_report.json").read_text())
    assert rep["status"] == "failed" and {r["reason"] for r in rep["rejected"]} == {"zero_bytes", "unreadable"}


def test_too_few_patients_in_a_class(tmp_path) -> None:
    for label, n in (("a", 4), ("b", 1)):
        for p in range(n):
            _noise_png(tmp_path / "d" / label / f"p{p}" / "0.png", seed=_seed(label, p))
    with pytest.raises(InputError, match="class 'b' has no patient in the val split .1 patient.s. in all"):
        ingest(str(tmp_path / "d"), tmp_path / "s", params=IngestParams(positive_class="a"))


def test_positive_class_required_and_checked(tmp_path) -> None:
    for label in ("a", "b"):
        for p in range(3):
            _noise_png(tmp_path / "d" / label / f"p{p}" / "0.png", seed=_seed(label, p))
    with pytest.raises(InputError, match=r"pass --positive-class, one of \['a', 'b'\]"):
        ingest(str(tmp_path / "d"), tmp_path / "s")
    with pytest.raises(InputError, match="'c' is not among the classes"):
        ingest(str(tmp_path / "d"), tmp_path / "s", params=IngestParams(positive_class="c"))


def test_missing_source(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        ingest(str(tmp_path / "nothing"), tmp_path / "s")


def test_cli_ingest_and_error_exit(tmp_path, capsys) -> None:
    rc = main(["ingest", "--out", str(tmp_path / "s"), "--quiet", "--seed", "3"])
    assert rc == 0 and (tmp_path / "s" / "frames.npy").exists()
    rc = main(["ingest", str(tmp_path / "nothing"), "--out", str(tmp_path / "t")])
    assert rc == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_s3_source(tmp_path, monkeypatch) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("LUSYNTH_S3_ENDPOINT_URL", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        from lusynth.storage.s3 import client

        s3 = client()
        s3.create_bucket(Bucket="lus")
        for label in ("pos", "neg"):
            for p in range(3):
                path = tmp_path / f"{label}{p}.png"
                _noise_png(path, seed=_seed(label, p))
                s3.upload_file(str(path), "lus", f"raw/{label}/pt{p}/0.png")
        res = ingest("s3://lus/raw", tmp_path / "s", params=IngestParams(positive_class="pos"))
        assert res.report["frames"] == 6 and res.report["source"] == "s3://lus/raw"
        with pytest.raises(InputError, match="no objects under this prefix"):
            ingest("s3://lus/nothing-here", tmp_path / "t", params=IngestParams(positive_class="pos"))
    finally:
        server.stop()


POCUS = Path(os.environ.get("LUSYNTH_POCUS_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pocus"))


@pytest.mark.pocus
@pytest.mark.skipif(not (POCUS / "clips.csv").is_file(), reason="../shared/data/pocus not present")
def test_real_pocus_clips_ingest(tmp_path) -> None:
    params = IngestParams(path_column="file", positive_class="abnormal", video_frames=4, split_fractions=(0.5, 0.25, 0.25))
    res = ingest(str(POCUS / "clips.csv"), tmp_path / "pocus", params=params)
    assert res.report["rejected"] == []
    assert res.report["files_accepted"] == 29
    store = open_store(res.store)
    assert store.classes == ["abnormal", "normal"]
    assert (store.manifest.groupby("patient_id")["split"].nunique() == 1).all()


def test_dvc_source_pins_a_revision(tmp_path, monkeypatch) -> None:
    import subprocess
    import sys

    dvc = [sys.executable, "-m", "dvc"]
    repo = tmp_path / "repo"
    repo.mkdir()

    def sh(*cmd: str) -> str:
        return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    sh("git", "init", "-q")
    sh("git", "config", "user.email", "t@example.invalid")
    sh("git", "config", "user.name", "t")
    sh(*dvc, "init", "-q")
    for label in ("pos", "neg"):
        for p in range(3):
            _noise_png(repo / "data" / label / f"{label}{p}" / "0.png", seed=_seed(label, p))
    sh(*dvc, "add", "-q", "data")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "v1")
    sh("git", "tag", "v1")
    v1 = sh("git", "rev-parse", "HEAD")
    _noise_png(repo / "data" / "pos" / "pos9" / "0.png", seed=123)  # v2 adds a patient
    sh(*dvc, "add", "-q", "data")
    sh("git", "commit", "-qam", "v2")
    monkeypatch.setenv("LUSYNTH_DVC_REPO", str(repo))
    old = ingest("dvc://data@v1", tmp_path / "s1", params=IngestParams(positive_class="pos"))
    new = ingest("dvc://data", tmp_path / "s2", params=IngestParams(positive_class="pos"))
    assert (old.report["frames"], new.report["frames"]) == (6, 7)
    assert open_store(old.store).header["dvc_revision"] == v1
    assert old.report["source"] == f"dvc://data@v1 (commit {v1})"
    with pytest.raises(InputError, match="not tracked"):
        ingest("dvc://nothing@v1", tmp_path / "s3", params=IngestParams(positive_class="pos"))
