"""``dvc.yaml`` generated from the stage table, so the DVC loop cannot drift from the CLI and KFP.

Each stage of :data:`lusynth.stages.STAGES` becomes a DVC stage calling its ``lusynth`` command
with ``--profile ${profile} --params-file params.yaml``; the artefact types decide the paths, the
task key the matrix (``label`` x ``experiment.fractions``, ``arm`` x fractions x seeds), the
profile sections the ``params:`` it depends on, and the stage's code closure
(:func:`lusynth.stagecache.code_closure`) its code ``deps``. ``python -m lusynth_pipelines.dvc``
rewrites the file; ``tests/pipeline/test_stage_table.py`` fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: where each artefact type lives in the DVC workspace (``{...}`` = the task key's fields)
PATHS: dict[str, str] = {
    "lusynth.data.framestore:FrameStore": "data/frames",
    "lusynth.gan.train:GanRun": "models/gan/${item.label}@${item.fraction}",
    "lusynth.gan.generate:SyntheticSet": "data/synthetic/${item.label}@${item.fraction}",
    "lusynth.classifier.train:ClassifierRun": "models/classifier/${item.arm}@${item.fraction}-s${item.seed}",
    "lusynth.evaluate.run:Evaluation": "reports/evaluation",
    "lusynth.export.stage:ExportedModels": "models/onnx",
    "lusynth.privacy.run:SyntheticSource": "data/synthetic/${item.label}@${item.fraction}",
    "lusynth.privacy.run:Audit": "reports/audit/${item.label}@${item.fraction}",
}
#: a list input is the folder holding every artefact of its type
FOLDERS: dict[str, str] = {
    "lusynth.gan.train:GanRun": "models/gan",
    "lusynth.gan.generate:SyntheticSet": "data/synthetic",
    "lusynth.classifier.train:ClassifierRun": "models/classifier",
    "lusynth.privacy.run:Audit": "reports/audit",
}
MATRIX: dict[str, dict[str, str]] = {
    "lusynth.keys:GanKey": {"label": "${classes}", "fraction": "${experiment.fractions}"},
    "lusynth.keys:Cell": {"arm": "${experiment.arms}", "fraction": "${experiment.fractions}", "seed": "${experiment.seeds}"},
}
#: stages that make one output per GAN though they have no task key of their own
PER_GAN = {"generate", "audit"}
HEADER = ("# Generated from the stage table (lusynth.stages) by `python -m lusynth_pipelines.dvc`; do not edit by hand.\n"
          "# Run: `dvc repro`; vary: `dvc exp run -S +gan.epochs=5` (override any section.field of the profile).\n")


def _code_deps(modules: tuple[str, ...]) -> list[str]:
    from lusynth.stagecache import code_closure

    files = []
    for m in code_closure(*modules):
        rel = Path("src", *m.split("."))
        files.append((rel / "__init__.py").as_posix() if (ROOT / rel).is_dir() else rel.with_suffix(".py").as_posix())
    return [*sorted(files), "src/lusynth/profiles.yaml"]


def render() -> str:
    """The text of dvc.yaml."""
    from lusynth.stages import STAGES

    stages: dict[str, Any] = {}
    for row in STAGES:
        per_gan = row.name in PER_GAN
        matrix = MATRIX.get(row.key or "") or (MATRIX["lusynth.keys:GanKey"] if per_gan else None)
        out = PATHS[row.output]
        cmd = [f"lusynth {row.command}"]
        deps: list[str] = []
        for o in row.options:
            if o.argument:
                cmd.append(f"${{{o.name}}}")
        for i in row.inputs:
            path = (PATHS["lusynth.gan.train:GanRun"] if per_gan and i.name == "gans" else FOLDERS.get(i.artefact) if i.many
                    else PATHS[i.artefact])
            cmd.append(f"{i.flags[0]} {path}")
            deps.append(path)
        if row.key:
            cmd += [f"--{k} ${{item.{k}}}" for k in MATRIX[row.key]]
        outs: list[Any] = [out]
        if row.name == "ingest":
            cmd.append("--report data/frames-report")
            outs.append({"data/frames-report": {"cache": False}})
        if row.name == "evaluate":
            cmd.append("--metrics-json reports/metrics.json --plots-dir reports/plots")
        if row.name == "export":
            # registering (and the promotion gate) is the KFP pipeline's / `lusynth export`'s job, so
            # repeated `dvc repro`s do not add registry versions
            cmd.append("--no-register")
        cmd.append(f"--profile ${{profile}} --params-file params.yaml --out {out} --quiet")
        spec: dict[str, Any] = {}
        if matrix:
            spec["matrix"] = dict(matrix)
        spec["cmd"] = " ".join(cmd)
        spec["deps"] = [*deps, *_code_deps(row.code)]
        spec["params"] = ["profile", *(["source"] if row.name == "ingest" else []), *row.sections]
        spec["outs"] = outs
        if row.name == "evaluate":
            spec["metrics"] = [{"reports/metrics.json": {"cache": False}}]
            spec["plots"] = [{"reports/plots/learning_curve.csv": {"x": "fraction", "y": "auc", "template": "linear"}},
                             {"reports/plots/roc.csv": {"x": "fpr", "y": "tpr", "template": "simple"}}]
        stages[row.name] = spec
    body = yaml.safe_dump({"vars": ["params.yaml"], "stages": stages}, sort_keys=False, width=200)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    """Write (default) or ``--check`` the repository's dvc.yaml."""
    args = sys.argv[1:] if argv is None else argv
    target = ROOT / "dvc.yaml"
    text = render()
    if "--check" in args:
        if target.read_text() != text:
            print(f"{target} is stale; run `python -m lusynth_pipelines.dvc`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
