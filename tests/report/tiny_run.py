"""A small real run on the tiny profile, stage by stage through :func:`lusynth.stages.run_stage`:
ingest (phantom) -> per fraction one GAN per class, generate, audit -> the four arms at each fraction
-> evaluate.

Used by the report tests that look at what a person sees (the browser test); each stage is the
real one, with the tiny profile's seconds-long settings."""

from __future__ import annotations

from pathlib import Path

from lusynth.runtime import RunContext
from lusynth.stages import run_stage

PROFILE = "tiny"
FRACTIONS = (0.5, 1.0)
# two fractions (a learning curve), enough patients for a few per class in the test split, and
# intervals from 2 patients per class on: the report then shows every part it has (bands, CIs)
OVERRIDES = {"experiment": {"fractions": list(FRACTIONS)}, "phantom": {"patients": 24}, "classifier": {"steps": 12},
             "evaluate": {"min_patients_per_class": 2}}
ARMS = ("real", "real+aug", "real+synthetic", "synthetic")


def tiny_run(root: Path) -> Path:
    """Run the stages into ``root`` (the run directory); the evaluation's output directory."""
    ctx = RunContext(track=False, progress=False, cache=False)

    def go(stage: str, out: str, **kw: object) -> Path:
        return run_stage(stage, root / out, profile=PROFILE, overrides=OVERRIDES, ctx=ctx, **kw).out  # type: ignore[arg-type]

    frames = go("ingest", "frames")
    from lusynth.data.framestore import open_store

    classes = open_store(frames).classes
    gans, syn, audits = [], [], []
    for f in FRACTIONS:
        mine = [go("train_gan", f"gan/{c}@{f:g}", inputs={"frames": frames}, key={"label": c, "fraction": f}) for c in classes]
        syn.append(go("generate", f"synthetic/{f:g}", inputs={"frames": frames, "gans": mine}))
        audits.append(go("audit", f"audit/{f:g}", inputs={"frames": frames, "synthetic": syn[-1], "gans": mine}))
        gans += mine
    clfs = [go("train_classifier", f"classifier/{arm.replace('+', '-')}@{f:g}", inputs={"frames": frames, "synthetic": syn},
               key={"arm": arm, "fraction": f, "seed": 0, "ratio": 1.0 if arm == "real+synthetic" else 0.0})
            for f in FRACTIONS for arm in ARMS]
    return go("evaluate", "evaluation", inputs={"frames": frames, "classifiers": clfs, "gans": gans, "synthetic": syn, "audits": audits})


if __name__ == "__main__":
    import sys

    print(tiny_run(Path(sys.argv[1])))
