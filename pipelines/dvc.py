"""``dvc.yaml`` generated from the stage table, so the DVC loop cannot drift from the CLI and KFP.

Each stage of :data:`lusynth.stages.STAGES` becomes a DVC stage calling its ``lusynth`` command
with ``--profile ${profile} --params-file params.yaml``; the artefact types decide the paths, the
task key the matrix, the profile sections the ``params:`` it depends on, and the stage's code
closure (:func:`lusynth.stagecache.code_closure`) its code ``deps``.

The grid is not a full cross product (real arms have no GAN seed or ratio), so DVC's matrix runs
over task lists that ``params.yaml`` holds, ``gans`` and ``cells``: exactly
:func:`lusynth.experiment.plan_gans` / :func:`~lusynth.experiment.plan_classifiers` of its
``experiment`` section. ``python -m lusynth_pipelines.dvc`` rewrites dvc.yaml and those lists;
``tests/pipeline/test_stage_table.py`` fails when either is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: where each artefact type lives in the DVC workspace (``{...}`` = the task key's fields)
_GAN = "${item.gan.label}@${item.gan.fraction}-g${item.gan.gan_seed}-k${item.gan.fold}"
_CELL = "${item.cell.arm}@${item.cell.fraction}-s${item.cell.seed}-r${item.cell.ratio}-g${item.cell.gan_seed}-k${item.cell.fold}"
PATHS: dict[str, str] = {
    "lusynth.data.framestore:FrameStore": "data/frames",
    "lusynth.gan.train:GanRun": f"models/gan/{_GAN}",
    "lusynth.gan.generate:SyntheticSet": f"data/synthetic/{_GAN}",
    "lusynth.classifier.train:ClassifierRun": f"models/classifier/{_CELL}",
    "lusynth.evaluate.run:Evaluation": "reports/evaluation",
    "lusynth.export.stage:ExportedModels": "models/onnx",
    "lusynth.privacy.run:SyntheticSource": f"data/synthetic/{_GAN}",
    "lusynth.privacy.run:Audit": f"reports/audit/{_GAN}",
}
#: a list input is the folder holding every artefact of its type
FOLDERS: dict[str, str] = {
    "lusynth.gan.train:GanRun": "models/gan",
    "lusynth.gan.generate:SyntheticSet": "data/synthetic",
    "lusynth.classifier.train:ClassifierRun": "models/classifier",
    "lusynth.privacy.run:Audit": "reports/audit",
}
#: task key -> (matrix variable, the params.yaml list it runs over)
MATRIX: dict[str, tuple[str, str]] = {
    "lusynth.keys:GanKey": ("gan", "gans"),
    "lusynth.keys:Cell": ("cell", "cells"),
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
        key_ref = row.key or ("lusynth.keys:GanKey" if per_gan else None)
        matrix = {MATRIX[key_ref][0]: f"${{{MATRIX[key_ref][1]}}}"} if key_ref else None
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
            var = MATRIX[row.key][0]
            cmd += [f"--{f.replace('_', '-')} ${{item.{var}.{f}}}" for f in row.key_class().__dataclass_fields__]
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


#: the line of params.yaml after which the generated task lists follow (everything below it is rewritten)
TASKS_MARKER = "# --- task lists: generated by `python -m lusynth_pipelines.dvc` from the experiment section; do not edit ---"


def task_lists(params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``gans`` and ``cells`` of a params.yaml document: the plans of its profile's grid with its
    ``experiment`` overrides, for its ``classes``."""
    from lusynth.experiment import plan_classifiers, plan_gans
    from lusynth.params import stage_params

    grid = stage_params("experiment", params["profile"], params.get("experiment") or {})
    return {"gans": [k.as_dict() for k in plan_gans(params["classes"], grid.fractions, grid)],
            "cells": [c.as_dict() for c in plan_classifiers(grid)]}


def render_params(text: str) -> str:
    """params.yaml's text with its task lists regenerated (everything after :data:`TASKS_MARKER`)."""
    head = text.split(TASKS_MARKER)[0].rstrip("\n")
    lists = task_lists(yaml.safe_load(head))
    body = "".join(f"{name}:\n" + "".join(f"- {yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=400).strip()}\n"
                                           for item in items) for name, items in lists.items())
    return f"{head}\n{TASKS_MARKER}\n{body}"


def main(argv: list[str] | None = None) -> int:
    """Write (default) or ``--check`` the repository's dvc.yaml and params.yaml's task lists."""
    args = sys.argv[1:] if argv is None else argv
    targets = {ROOT / "dvc.yaml": render(), ROOT / "params.yaml": render_params((ROOT / "params.yaml").read_text())}
    if "--check" in args:
        stale = [str(t) for t, text in targets.items() if t.read_text() != text]
        if stale:
            print(f"{', '.join(stale)} stale; run `python -m lusynth_pipelines.dvc`", file=sys.stderr)
            return 1
        return 0
    for target, text in targets.items():
        target.write_text(text)
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
