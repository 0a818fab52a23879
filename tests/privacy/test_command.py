"""`lusynth audit` as a user types it: on a folder of PNGs another generator wrote, and on a
lusynth synthetic set at the tiny profile (generate -> audit, the unfiltered output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lusynth.cli import main
from lusynth.data.framestore import open_store
from lusynth.privacy.run import Audit


def _write_pngs(out: Path, frames: np.ndarray, labels: np.ndarray, size: int) -> None:
    for i, (f, lbl) in enumerate(zip(frames, labels, strict=True)):
        (out / lbl).mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR).save(out / lbl / f"img{i:04d}.png")


@pytest.fixture(scope="module")
def other_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames of 12 patients no store above contains (another phantom seed)."""
    from lusynth.data.ingest import IngestParams, ingest
    from lusynth.data.phantom import PhantomParams

    out = tmp_path_factory.mktemp("other") / "frames"
    ingest(None, out, params=IngestParams(), phantom=PhantomParams(seed=11, patients=12, clips_per_patient=2, frames_per_clip=8))
    return out


def _audit(frames: Path, synthetic: Path, out: Path, *extra: str) -> int:
    return main(["audit", "--frames", str(frames), "--synthetic", str(synthetic), "--trained-on", "train", "--out", str(out),
                 "--profile", "tiny", "--no-cache", *extra])


def test_png_folder_of_noisy_training_frames_fails(phantom_store: Path, tmp_path: Path) -> None:
    st = open_store(phantom_store)
    train = st.indices(split="train")
    rng = np.random.default_rng(0)
    noisy = np.clip(np.asarray(st.frames[train]).astype(float) + rng.normal(0, 2, (len(train), 64, 64)), 0, 255).astype(np.uint8)
    _write_pngs(tmp_path / "png", noisy, st.manifest["label"].to_numpy()[train], size=128)  # another size: decoded and resized
    assert _audit(phantom_store, tmp_path / "png", tmp_path / "audit") == 0
    a = Audit.load(tmp_path / "audit")
    assert a.decision == "fail" and a.report["synthetic"]["kind"] == "images" and a.report["synthetic"]["labelled"]
    assert a.report["memorisation"]["copy_rate"] > 0.9
    assert {"audit.md", "near_copy_ratios.png", "membership_scores.png"} <= {p.name for p in (tmp_path / "audit").iterdir()}


def test_png_folder_of_unseen_patients_does_not_fail(phantom_store: Path, other_phantom: Path, tmp_path: Path) -> None:
    other = open_store(other_phantom)
    _write_pngs(tmp_path / "png", np.asarray(other.frames), other.manifest["label"].to_numpy(), size=64)
    assert _audit(phantom_store, tmp_path / "png", tmp_path / "audit") == 0
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert report["decision"] in ("pass", "insufficient_evidence")
    assert report["memorisation"]["copy_rate"] <= 0.05


def test_bad_arguments_fail_in_one_line(phantom_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert _audit(phantom_store, tmp_path / "empty", tmp_path / "a") != 0
    assert "not a synthetic set (the output of `lusynth generate`) or a folder of PNG/JPEG images" in capsys.readouterr().err
    _write_pngs(tmp_path / "png", np.zeros((2, 8, 8), np.uint8), np.array(["x", "y"]), size=8)
    capsys.readouterr()
    assert main(["audit", "--frames", str(phantom_store), "--synthetic", str(tmp_path / "png"), "--trained-on", "fold:1",
                 "--out", str(tmp_path / "b"), "--profile", "tiny"]) != 0
    err = capsys.readouterr().err
    assert "--trained-on fold:1: " in err and "fold 1 is not in this frame store" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_generate_then_audit_at_the_tiny_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> None:
        assert main([*args, "--profile", "tiny"]) == 0, args

    run("ingest", "--out", "data/frames", "--quiet")
    for label in ("consolidation", "no_consolidation"):
        run("train-gan", "-f", "data/frames", "--label", label, "--fraction", "1.0", "-o", f"models/gan/{label}", "--no-track", "-q")
    run("generate", "-g", "models/gan/consolidation", "-g", "models/gan/no_consolidation", "-f", "data/frames", "-o", "data/synthetic",
        "--no-track")
    run("audit", "--frames", "data/frames", "--synthetic", "data/synthetic", "--trained-on", "train", "--out", "reports/audit")
    a = Audit.load("reports/audit")
    assert a.decision in ("pass", "fail", "insufficient_evidence") and a.report["synthetic"]["kind"] == "synthetic_set"
    # the unfiltered first round: n_per_class (16 at tiny) per class, whatever the filter removed
    assert a.report["n"]["synthetic"] == 32 and set(a.report["filter"]["per_class"]) == {"consolidation", "no_consolidation"}
    f = a.report["filter"]
    assert f["copies_the_filter_removed"] + f["copies_the_filter_kept"] == f["copies_in_unfiltered"]
    # no GAN given: no discriminator to attack with, and the report says so
    assert "discriminator" not in a.report["membership"] and "not run" in a.report["discriminator_attack"]
    run("audit", "--frames", "data/frames", "--synthetic", "data/synthetic", "--gan", "models/gan/consolidation",
        "--gan", "models/gan/no_consolidation", "--out", "reports/audit-d")
    d = Audit.load("reports/audit-d")
    assert set(d.report["discriminator_attack"]) == {"consolidation", "no_consolidation"}
    assert 0 <= d.report["membership"]["discriminator"]["auc"] <= 1
    # evaluate reads the audit's decision instead of recomputing a gate of its own
    run("train-classifier", "-f", "data/frames", "-s", "data/synthetic", "--arm", "real+synthetic", "--fraction", "1.0", "--seed", "0",
        "-o", "models/classifier/mixed", "--no-track", "-q")
    run("evaluate", "-f", "data/frames", "-c", "models/classifier", "-g", "models/gan", "-s", "data/synthetic", "--audit", "reports/audit",
        "-o", "reports/eval", "--no-track", "-q")
    from lusynth.evaluate.result import Evaluation

    ev = Evaluation.load("reports/eval")
    assert len(ev.audits) == 2 and all(x["gate"]["decision"] == a.decision for x in ev.audits)
    assert ev.privacy_passed == a.passed
    # the report shows each GAN's patient-level audit: decision, membership attacks, and the audit's figures
    md = ev.markdown.read_text()
    assert "## Privacy audit (patient level)" in md and a.decision.replace("_", " ") in md
    assert "| distance |" in md.split("## Privacy audit (patient level)")[1]
    assert {f"audit_{stem}_consolidation_f1" for stem in a.figures()} <= set(ev.figures)
