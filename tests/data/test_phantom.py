"""The built-in LUS phantom: deterministic, scanner-like, with measurable class cues, written as
a real user would hand a dataset to ingest."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from lusynth.cli import main
from lusynth.data import phantom_files
from lusynth.data.phantom import (
    CLASSES,
    CONSOLIDATION,
    NO_CONSOLIDATION,
    PhantomParams,
    clip_scene,
    pixel_depth_cm,
    render_clip,
    render_frames,
    sign_strength,
)
from lusynth.data.phantom_files import write_phantom_dataset
from lusynth.errors import InputError
from lusynth.params import stage_params

SMALL = PhantomParams(patients=4, clips_per_patient=2, frames_per_clip=3)


def test_same_seed_same_frames_different_seed_different() -> None:
    a, label_a = render_clip(SMALL, patient=1, clip=1)
    b, label_b = render_clip(SMALL, patient=1, clip=1)
    c, _ = render_clip(PhantomParams(seed=1, patients=4, clips_per_patient=2, frames_per_clip=3), patient=1, clip=1)
    assert a.dtype == np.uint8 and a.shape == (3, SMALL.height, SMALL.width)
    assert label_a == label_b == CONSOLIDATION
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.3


def test_adding_patients_and_clips_keeps_earlier_ones() -> None:
    small = PhantomParams(patients=2, clips_per_patient=1, frames_per_clip=2)
    big = PhantomParams(patients=5, clips_per_patient=3, frames_per_clip=2)
    for p in range(2):
        np.testing.assert_array_equal(render_clip(small, patient=p, clip=0)[0], render_clip(big, patient=p, clip=0)[0])


def test_render_frames_rows_match_frames_and_classes_balance() -> None:
    frames, rows = render_frames(PhantomParams(patients=4, clips_per_patient=2, frames_per_clip=2))
    assert frames.shape == (16, 288, 320)  # scanner-like, non-square
    assert len(rows) == 16
    assert rows[0] == {"patient_id": "PAT-0001", "video_id": "PAT-0001-V01", "frame_index": 0, "label": NO_CONSOLIDATION}
    assert sorted({r["label"] for r in rows}) == sorted(CLASSES)
    assert sum(r["label"] == CONSOLIDATION for r in rows) == 8
    assert len({r["video_id"] for r in rows}) == 8


def test_pixels_outside_the_fan_are_black_and_the_fan_is_not() -> None:
    for p in range(SMALL.patients):
        frames, _ = render_clip(SMALL, patient=p, clip=0)
        outside = np.isnan(pixel_depth_cm(SMALL, p))
        assert outside.mean() > 0.2  # a sector, not a rectangle
        assert (frames[:, outside] == 0).all()
        assert (frames[:, ~outside] > 0).mean() > 0.9


def _band_contrast(params: PhantomParams, patient: int, clip: int) -> float:
    """Median grey just under the pleura minus median grey of the soft tissue above it (gain-free)."""
    depth = pixel_depth_cm(params, patient)
    pleura = clip_scene(params, patient=patient, clip=clip).pleura_cm
    frames, _ = render_clip(params, patient=patient, clip=clip)
    band = (depth > pleura + 0.25) & (depth < pleura + 1.0)
    tissue = (depth > 0.3) & (depth < pleura - 0.15)
    return float(np.median(frames[:, band]) - np.median(frames[:, tissue]))


def test_consolidation_is_a_hypoechoic_band_under_the_pleura() -> None:
    params = PhantomParams(patients=16, clips_per_patient=1, frames_per_clip=2, small_consolidation_rate=0.0, difficulty=0.0)
    contrast = {cls: [] for cls in CLASSES}
    for p in range(params.patients):
        contrast[clip_scene(params, patient=p, clip=0).label].append(_band_contrast(params, p, 0))
    assert np.mean(contrast[CONSOLIDATION]) < np.mean(contrast[NO_CONSOLIDATION]) - 5


def _patient_auc(params: PhantomParams) -> float:
    """Patient-level ROC AUC of the (negated) band contrast: a simple, gain-free class feature."""
    from sklearn.metrics import roc_auc_score

    labels = [clip_scene(params, patient=p, clip=0).label == CONSOLIDATION for p in range(params.patients)]
    return float(roc_auc_score(labels, [-_band_contrast(params, p, 0) for p in range(params.patients)]))


def test_difficulty_lowers_the_separability_of_a_simple_feature() -> None:
    # the same 40 patients (same scenes, same speckle) at rising difficulty: only the patients'
    # sign strengths change, so the feature's AUC must fall step by step
    base = dict(patients=40, clips_per_patient=1, frames_per_clip=1, width=160, height=144, small_consolidation_rate=0.0)
    aucs = [_patient_auc(PhantomParams(**base, difficulty=d)) for d in (0.0, 0.5, 1.0)]
    assert aucs[0] > aucs[1] > aucs[2]
    assert aucs[0] - aucs[2] > 0.04


def test_sign_strength_is_a_patient_effect_that_overlaps_only_when_difficult() -> None:
    easy, hard = PhantomParams(patients=40, difficulty=0.0), PhantomParams(patients=40, difficulty=1.0)
    assert [sign_strength(easy, p) for p in range(4)] == [0.0, 1.0, 0.0, 1.0]
    s_hard = np.array([sign_strength(hard, p) for p in range(40)])
    pos, neg = s_hard[1::2], s_hard[0::2]
    assert neg.max() <= 0.6 and pos.min() < neg.max()  # the classes' ranges overlap
    # the same in every clip of a patient
    assert {clip_scene(hard, patient=3, clip=c).sign for c in range(2)} == {sign_strength(hard, 3)}
    with pytest.raises(ValueError, match="difficulty"):
        PhantomParams(difficulty=1.5)


def test_mean_brightness_alone_does_not_separate_the_classes() -> None:
    frames, rows = render_frames(PhantomParams(patients=16, clips_per_patient=1, frames_per_clip=1))
    mean = frames.reshape(len(frames), -1).mean(axis=1)
    cons = np.array([r["label"] == CONSOLIDATION for r in rows])
    # rank statistic (ROC AUC) of mean brightness: far from a perfect 0 or 1
    order = mean.argsort().argsort()
    auc = (order[cons].sum() - cons.sum() * (cons.sum() - 1) / 2) / (cons.sum() * (~cons).sum())
    assert 0.2 < auc < 0.8


def test_normal_lung_shows_a_lines_at_multiples_of_the_pleural_depth() -> None:
    params = PhantomParams(patients=8, clips_per_patient=1, frames_per_clip=2, rib_rate=0.0, normal_b_line_rate=0.0)
    hits = 0
    for p in range(0, params.patients, 2):  # even patients are normal
        frames, label = render_clip(params, patient=p, clip=0)
        assert label == NO_CONSOLIDATION
        depth = pixel_depth_cm(params, p)
        centre = params.width // 2
        column = depth[:, centre]
        rows = np.where(~np.isnan(column))[0]
        px_per_cm = (rows[-1] - rows[0]) / (column[rows[-1]] - column[rows[0]])
        profile = frames[:, rows, centre - 3 : centre + 4].astype(float).mean(axis=(0, 2))
        profile -= np.convolve(profile, np.ones(31) / 31, mode="same")  # remove the depth trend
        lags = np.arange(len(profile) // 2)
        ac = np.array([np.dot(profile[: len(profile) - k], profile[k:]) for k in lags])
        pleura_px = clip_scene(params, patient=p, clip=0).pleura_cm * px_per_cm
        window = (lags > 0.6 * pleura_px) & (lags < 1.5 * pleura_px)
        peak = lags[window][ac[window].argmax()]
        hits += abs(peak - pleura_px) <= 0.12 * pleura_px + 2
    assert hits == 4


def test_frames_of_a_clip_look_alike_more_than_frames_of_two_patients() -> None:
    def corr(x: np.ndarray, y: np.ndarray) -> float:
        m = (x > 0) & (y > 0)
        return float(np.corrcoef(x[m].astype(float), y[m].astype(float))[0, 1])

    a, _ = render_clip(SMALL, patient=0, clip=0)
    b, _ = render_clip(SMALL, patient=2, clip=0)  # same class, another patient
    within = np.mean([corr(a[0], a[1]), corr(a[1], a[2])])
    across = corr(a[0], b[0])
    assert within > 0.5
    assert within > across + 0.3
    assert not np.array_equal(a[0], a[1])  # frames do move


def test_params_are_validated_with_actionable_messages() -> None:
    with pytest.raises(ValueError, match="phantom.formats=.*unknown container.*'avi'.*png, mp4, gif"):
        PhantomParams(formats=("png", "avi"))
    with pytest.raises(ValueError, match="even"):
        PhantomParams(width=321)
    PhantomParams(width=321, formats=("png", "gif"))  # odd sizes are fine without mp4
    with pytest.raises(InputError, match="patients=0"):
        stage_params("phantom", "demo", {"patients": 0})
    with pytest.raises(ValueError, match="patient=9"):
        render_clip(SMALL, patient=9, clip=0)


def test_written_dataset_resolves_and_every_container_reads_back(tmp_path: Path) -> None:
    params = PhantomParams(patients=2, clips_per_patient=3, frames_per_clip=4, width=160, height=144)
    labels = write_phantom_dataset(tmp_path / "ds", params)
    assert labels == tmp_path / "ds" / "labels.csv"
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "patient_id", "video_id"]
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        assert (labels.parent / row["path"]).is_file(), row["path"]
        by_video.setdefault(row["video_id"], []).append(row)
    assert len(by_video) == 6
    kinds = set()
    for vid, vrows in by_video.items():
        p, c = int(vid[4:8]) - 1, int(vid[-2:]) - 1
        expected, label = render_clip(params, patient=p, clip=c)
        assert {r["label"] for r in vrows} == {label}
        assert {r["patient_id"] for r in vrows} == {f"PAT-{p + 1:04d}"}
        path = labels.parent / vrows[0]["path"]
        kinds.add(path.suffix)
        if path.suffix == ".png":
            assert len(vrows) == 4  # one row per PNG frame
            got = np.stack([np.asarray(Image.open(labels.parent / r["path"])) for r in vrows])
            np.testing.assert_array_equal(got, expected)
        elif path.suffix == ".gif":
            assert len(vrows) == 1
            got = np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(Image.open(path))])
            np.testing.assert_array_equal(got, expected)  # 8-bit grey fits a GIF palette exactly
        else:
            assert path.suffix == ".mp4" and len(vrows) == 1
            with av.open(str(path)) as container:
                got = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
            assert got.shape == expected.shape
            assert np.abs(got.astype(int) - expected).mean() < 6  # lossy but the cues survive
    assert kinds == {".png", ".gif", ".mp4"}


def test_a_failed_write_leaves_no_partial_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "previous.txt").write_text("old dataset")
    calls = []

    def failing(params: PhantomParams, *, patient: int, clip: int):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return render_clip(params, patient=patient, clip=clip)

    monkeypatch.setattr(phantom_files, "render_clip", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_phantom_dataset(out, PhantomParams(patients=2, clips_per_patient=1, frames_per_clip=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no .tmp-* left behind
    assert sorted(p.name for p in out.iterdir()) == ["previous.txt"]  # the old output is untouched


def test_cli_phantom_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ph"
    argv = ["phantom", "--out", str(out), "--patients", "2", "--clips-per-patient", "2", "--frames-per-clip", "2",
            "--seed", "3", "--formats", "gif,mp4", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "labels.csv" in text and "2 gif" in text and "2 mp4" in text
    assert len((out / "labels.csv").read_text().splitlines()) == 5
    assert len(list(out.rglob("*.gif"))) == 2 and len(list(out.rglob("*.mp4"))) == 2
    assert main(["phantom", "--out", str(tmp_path / "bad"), "--patients", "0", "--no-progress"]) == 2
    assert "patients=0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
