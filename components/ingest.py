"""KFP component: ingest (user data or the phantom -> frame store)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Markdown, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    profile: str,
    image_size: int,
    fractions: list,
    frames: Output[Dataset],
    report: Output[Artifact],
    summary: Output[Markdown],
) -> None:
    """Frames from ``source`` ('' = built-in phantom), split by patient, nested ``fractions``."""
    import json
    from pathlib import Path

    from lusynth.data.ingest import summarise
    from lusynth.stages import ingest_stage, zero_is_unset

    outcome = ingest_stage(frames.path, source=source, profile=profile, report_dir=report.path,
                           overrides=zero_is_unset(image_size=image_size, train_fractions=fractions))
    header = json.loads((Path(frames.path) / "header.json").read_text())
    frames.metadata.update({"digest": header["content_digest"], "frames": header["n_frames"], "classes": header["classes"],
                            "cached": outcome.cached})
    rep = Path(report.path) / "ingest_report.json"
    text = summarise(json.loads(rep.read_text())) if rep.is_file() else "restored from the stage cache\n"
    Path(summary.path).write_text("# Ingest\n\n```\n" + text + "```\n")
