"""The README's stage-by-stage commands, typed in order by a user, compose without extra steps:
ingest -> train-gan per class -> generate (both GANs into one synthetic set) -> train-classifier
per arm -> evaluate -> export. Every stage is real, at the `tiny` profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from lusynth.cli import main

pytestmark = pytest.mark.slow


def _run(*args: str) -> None:
    assert main([*args, "--profile", "tiny"]) == 0, args


def _refused(capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert main([*args, "--profile", "tiny"]) == 2, args
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_stage_by_stage_commands_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    _run("ingest", "--out", "data/frames", "--quiet")
    for label in ("consolidation", "no_consolidation"):
        _run("train-gan", "-f", "data/frames", "--label", label, "--fraction", "1.0", "-o", f"models/gan/{label}", "--no-track", "-q")
    _run("generate", "-g", "models/gan/consolidation", "-g", "models/gan/no_consolidation", "-f", "data/frames", "-o", "data/synthetic",
         "--no-track")
    # a side output is checked like --out: never an unrelated folder, its own earlier output is fine
    Path("thesis").mkdir()
    Path("thesis/thesis.docx").write_bytes(b"four years")
    gen = ("generate", "-g", "models/gan/consolidation", "-g", "models/gan/no_consolidation", "-f", "data/frames", "-o", "data/synthetic",
           "--no-track")
    assert "--png thesis" in _refused(capsys, *gen, "--png", "thesis")
    assert "--png data/frames" in _refused(capsys, *gen, "--png", "data/frames/png")  # never inside an input
    _run(*gen, "--png", "data/png")
    _run(*gen, "--png", "data/png")
    assert len(list(Path("data/png").rglob("*.png"))) > 0
    for arm in ("real", "real+synthetic", "synthetic"):
        _run("train-classifier", "-f", "data/frames", "-s", "data/synthetic", "--arm", arm, "--fraction", "1.0", "--seed", "0",
             "-o", f"models/classifier/{arm}", "--no-track", "-q")
    capsys.readouterr()
    _run("evaluate", "-f", "data/frames", "-c", "models/classifier", "-g", "models/gan", "-s", "data/synthetic", "-o", "reports/eval",
         "--no-track")
    assert "report:" in capsys.readouterr().out
    ev_args = ("evaluate", "-f", "data/frames", "-c", "models/classifier", "-g", "models/gan", "-s", "data/synthetic", "-o", "reports/eval",
               "--no-track")
    assert "--metrics-json thesis/thesis.docx" in _refused(capsys, *ev_args, "--metrics-json", "thesis/thesis.docx")
    assert "--plots-dir thesis" in _refused(capsys, *ev_args, "--plots-dir", "thesis")
    assert Path("thesis/thesis.docx").read_bytes() == b"four years" and sorted(p.name for p in Path("thesis").iterdir()) == ["thesis.docx"]
    _run(*ev_args, "--metrics-json", "reports/metrics.json", "--plots-dir", "reports/plots")
    _run(*ev_args, "--metrics-json", "reports/metrics.json", "--plots-dir", "reports/plots")
    _run("export", "-c", "models/classifier", "-g", "models/gan", "-e", "reports/eval", "--no-register", "-o", "models/onnx")

    from lusynth.evaluate.result import Evaluation
    from lusynth.export.stage import ExportedModels

    ev = Evaluation.load("reports/eval")
    assert {(c["arm"], c["fraction"]) for c in ev.classifiers} == {("real", 1.0), ("real+synthetic", 1.0), ("synthetic", 1.0)}
    # the one two-class synthetic set is audited once per class, each against its own GAN
    assert sorted((a["label"], a["fraction"]) for a in ev.audits) == [("consolidation", 1.0), ("no_consolidation", 1.0)]
    assert all(a["gan_dir"] for a in ev.audits)
    # each audited GAN's training cost, from its own record: the budget the report states per family
    from lusynth.gan.run import GanRun

    for a in ev.audits:
        gan = GanRun.load(a["gan_dir"])
        images = gan.steps * gan.params["batch_size"]
        assert a["training"]["steps"] == gan.steps > 0 and a["training"]["epochs"] == gan.epochs
        assert a["training"]["tflop"] == pytest.approx(images * gan.flops_per_image["train_step"] / 1e12)
        assert a["training"]["seconds"] == pytest.approx(images / gan.images_per_second)
    assert "| training per GAN, median: steps · TFLOP · seconds |" in Path("reports/eval/report.md").read_text()
    exported = ExportedModels.load("models/onnx")
    assert set(exported.classifiers) == {"real", "real+synthetic", "synthetic"}
    assert set(exported.generators) == {"consolidation", "no_consolidation"}


def test_a_parameter_flag_a_set_and_a_params_file_reach_the_same_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--image-size 32`, `--set ingest.image_size=32` and a params file give the same store."""
    from lusynth.data.framestore import FrameStore

    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", "off")
    (tmp_path / "params.yaml").write_text("profile: tiny\ningest: {image_size: 32}\ngan: {}\n")
    _run("ingest", "-o", str(tmp_path / "a"), "--image-size", "32", "-q")
    _run("ingest", "-o", str(tmp_path / "b"), "--set", "ingest.image_size=32", "-q")
    _run("ingest", "-o", str(tmp_path / "c"), "--params-file", str(tmp_path / "params.yaml"), "-q")
    digests = {FrameStore.load(tmp_path / d).digest for d in "abc"}
    assert len(digests) == 1 and FrameStore.load(tmp_path / "a").image_size == 32


@pytest.mark.parametrize("args, message", [
    (["--set", "gan.epochz=3"], "gan has no parameter 'epochz'"),
    (["--set", "epochs=3"], "write SECTION.KEY=VALUE"),
    (["--set", "ingest.image_size=abc"], "ingest.image_size: expected int"),
    (["--image-size", "48"], "ingest.image_size=48: choose one of 32, 64, 128, 256"),
])
def test_bad_parameters_fail_in_one_line_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture, args, message) -> None:
    rc = main(["ingest", "-o", str(tmp_path / "s"), "--profile", "tiny", "-q", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "s").exists()
