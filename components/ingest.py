"""KFP component: ingest (user data or the phantom -> frame store)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Markdown, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(source: str, profile: str, overrides: dict, frames: Output[Dataset], report: Output[Artifact], summary: Output[Markdown]) -> None:
    """Frames from ``source`` ('' = built-in phantom), split by patient, nested training fractions."""
    from pathlib import Path

    from lusynth.data.ingest_report import IngestReport
    from lusynth.stages import run_stage

    outcome = run_stage("ingest", frames.path, profile=profile, overrides=overrides, options={"source": source, "report": report.path})
    frames.metadata.update({**outcome.artefact.kfp_metadata(), "cached": outcome.cached})
    text = IngestReport.load(report.path).summary() if outcome.cached is False else "restored from the stage cache\n"
    Path(summary.path).write_text("# Ingest\n\n```\n" + text + "```\n")
