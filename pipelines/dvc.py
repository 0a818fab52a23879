"""``dvc.yaml`` and ``params.yaml`` generated from the stage table, so the DVC loop cannot drift
from the CLI and KFP.

Each stage of :data:`lusynth.stages.STAGES` becomes a DVC stage calling its ``lusynth`` command
with ``--profile ${profile} --params-file params.yaml``; the artefact types decide the paths, the
task key the matrix, and the stage's code closure (:func:`lusynth.stagecache.code_closure`, the
modules it imports, the same set its stage-cache key covers) its code ``deps``.

Parameters: ``params.yaml`` holds every field of every section, resolved from one profile
(``python -m lusynth_pipelines.dvc --profile tiny`` rewrites them), so DVC tracks the values a
stage runs with, not the profile's name: each stage's ``params:`` lists its own sections, and
``dvc exp run -S gan.epochs=5`` re-runs exactly the stages that read ``gan`` and what follows
them. Values edited in params.yaml (or by ``-S``) are kept when the file is regenerated.

The grid is not a full cross product (real arms have no GAN seed or ratio), so DVC's matrix runs
over task lists that ``params.yaml`` holds: ``gans`` (and ``gans_<family>`` per generator family:
each family's GANs train in a DVC stage of their own, ``train_gan`` for the DCGAN and
``train_gan_fastgan``, which tracks only the ``gan`` fields that family reads, so ``-S
gan.fastgan_lr=...`` re-runs no DCGAN), ``real_cells`` (arms without synthetic
frames, a DVC stage of their own, ``train_classifier_real``, that depends on no synthetic data)
and ``synthetic_cells`` (each depends on the synthetic sets of its fraction, GAN seed and fold
only). They are :func:`lusynth.experiment.plan_gans` / :func:`~lusynth.experiment.plan_classifiers`
of its ``experiment`` section. Every stage tracks into one MLflow store per DVC workspace
(``runs/dvc/mlruns.db``, via ``LUSYNTH_TRACKING_DIR``) unless ``MLFLOW_TRACKING_URI`` points
elsewhere (``eval "$(lusynth stack env)"``). ``tests/pipeline/test_stage_table.py`` fails when
dvc.yaml or params.yaml is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: where each artefact type lives in the DVC workspace (``{...}`` = the task key's fields)
_GAN = "${item.gan.label}@${item.gan.fraction}-g${item.gan.gan_seed}-k${item.gan.fold}-${item.gan.generator}"
_CELL = ("${item.cell.arm}@${item.cell.fraction}-s${item.cell.seed}-r${item.cell.ratio}-g${item.cell.gan_seed}-k${item.cell.fold}"
         "-${item.cell.generator}")
PATHS: dict[str, str] = {
    "lusynth.data.framestore:FrameStore": "data/frames",
    "lusynth.gan.run:GanRun": f"models/gan/{_GAN}",
    "lusynth.gan.synthetic:SyntheticSet": f"data/synthetic/{_GAN}",
    "lusynth.classifier.run:ClassifierRun": f"models/classifier/{_CELL}",
    "lusynth.evaluate.result:Evaluation": "reports/evaluation",
    "lusynth.export.stage:ExportedModels": "models/onnx",
    "lusynth.privacy.run:SyntheticSource": f"data/synthetic/{_GAN}",
    "lusynth.privacy.run:Audit": f"reports/audit/{_GAN}",
}
#: a list input is the folder holding every artefact of its type
FOLDERS: dict[str, str] = {
    "lusynth.gan.run:GanRun": "models/gan",
    "lusynth.gan.synthetic:SyntheticSet": "data/synthetic",
    "lusynth.classifier.run:ClassifierRun": "models/classifier",
    "lusynth.privacy.run:Audit": "reports/audit",
}
#: task key -> matrix variable
MATRIX: dict[str, str] = {"lusynth.keys:GanKey": "gan", "lusynth.keys:Cell": "cell"}
#: stages that make one output per GAN though they have no task key of their own
PER_GAN = {"generate", "audit"}
#: the one MLflow store of a DVC workspace (a SQLite file in this folder, ignored by git and DVC)
TRACKING_DIR = "runs/dvc"
#: the stage table's train_classifier is two DVC stages: arms without synthetic frames depend on none
REAL_CLASSIFIER_STAGE = "train_classifier_real"
#: params.yaml's keys that are the driver's, not a section's
DRIVER_KEYS = ("profile", "source", "classes")
HEADER = ("# Generated from the stage table (lusynth.stages) and params.yaml by `python -m lusynth_pipelines.dvc`; do not edit by hand.\n"
          "# Run: `dvc repro`; vary: `dvc exp run -S gan.epochs=5` (any section.field of params.yaml).\n")


def _code_deps(modules: tuple[str, ...]) -> list[str]:
    """The source files of the modules a stage imports (its code closure), nothing else of src/."""
    from lusynth.stagecache import code_closure

    files = []
    for m in code_closure(*modules):
        rel = Path("src", *m.split("."))
        files.append((rel / "__init__.py").as_posix() if (ROOT / rel).is_dir() else rel.with_suffix(".py").as_posix())
    return sorted(files)


def _read_params(path: Path | None = None) -> dict[str, Any]:
    p = path or ROOT / "params.yaml"
    return yaml.safe_load(p.read_text().split(TASKS_MARKER)[0]) or {}


def _synthetic_paths(classes: list[str]) -> list[str]:
    """The synthetic sets one synthetic-arm cell reads: one per class, of its fraction, GAN seed, fold and family."""
    cell = "${item.cell.fraction}-g${item.cell.gan_seed}-k${item.cell.fold}-${item.cell.generator}"
    return [f"data/synthetic/{c}@{cell}" for c in classes]


def gan_stage(family: str) -> str:
    """The DVC stage that trains ``family``'s GANs: ``train_gan`` for the paper's DCGAN, ``train_gan_<family>`` for another."""
    return "train_gan" if family == "dcgan" else f"train_gan_{family}"


def _stage_spec(row: Any, *, matrix: str | None, synthetic: list[str] | None, family: str | None = None) -> dict[str, Any]:
    """One DVC stage of ``row``; ``synthetic``: the synthetic-set paths of a classifier cell ([] = none);
    ``family``: the generator family of a train_gan stage, whose ``params:`` are the ``gan`` fields that
    family reads (the stage cache's rule, :func:`lusynth.gan.params.for_family`)."""
    per_gan = row.name in PER_GAN
    out = PATHS[row.output]
    cmd = [f"LUSYNTH_TRACKING_DIR={TRACKING_DIR} lusynth {row.command}"]
    deps: list[str] = []
    for o in row.options:
        if o.argument:
            cmd.append(f"${{{o.name}}}")
    for i in row.inputs:
        if synthetic is not None and i.name == "synthetic":
            cmd += [f"{i.flags[0]} {p}" for p in synthetic]
            deps += synthetic
            continue
        path = (PATHS["lusynth.gan.run:GanRun"] if per_gan and i.name == "gans" else FOLDERS[i.artefact] if i.many
                else PATHS[i.artefact])
        cmd.append(f"{i.flags[0]} {path}")
        deps.append(path)
    if row.key:
        var = MATRIX[row.key]
        cmd += [f"--{f.replace('_', '-')} ${{item.{var}.{f}}}" for f in row.key_class().__dataclass_fields__]
    outs: list[Any] = [out]
    if row.name == "ingest":
        cmd.append("--report data/frames-report")
        outs.append({"data/frames-report": {"cache": False}})
    if row.name == "evaluate":
        cmd.append("--metrics-json reports/metrics.json --plots-dir reports/plots")
    if row.name == "export_register":
        # registering (and the promotion gate) is the KFP pipeline's / `lusynth export`'s job, so
        # repeated `dvc repro`s do not add registry versions; DVC's own registry is `artifacts:`
        cmd.append("--no-register")
    cmd.append(f"--profile ${{profile}} --params-file params.yaml --out {out} --quiet")
    spec: dict[str, Any] = {}
    if matrix:
        spec["matrix"] = {MATRIX["lusynth.keys:Cell" if row.key == "lusynth.keys:Cell" else "lusynth.keys:GanKey"]: f"${{{matrix}}}"}
    spec["cmd"] = " ".join(cmd)
    spec["deps"] = [*deps, *_code_deps(row.code)]
    # the values the stage runs with; ingest prepares the grid's training fractions, nothing else of it
    sections = [*(["source"] if row.name == "ingest" else []),
                *("experiment.fractions" if s == "experiment" else s for s in row.sections)]
    if family is not None:  # another family's own knobs (gan.fastgan_* for the DCGAN) do not re-run this family's GANs
        from lusynth.gan.params import family_param_names

        sections = [x for s in sections for x in ([f"gan.{f}" for f in family_param_names(family)] if s == "gan" else [s])]
    spec["params"] = sections
    spec["outs"] = outs
    if row.name == "evaluate":
        spec["metrics"] = [{"reports/metrics.json": {"cache": False}}]
        spec["plots"] = [{"reports/plots/learning_curve.csv": {"x": "fraction", "y": "auc", "template": "linear"}},
                         {"reports/plots/roc.csv": {"x": "fpr", "y": "tpr", "template": "simple"}}]
    return spec


def _artifacts(params: Mapping[str, Any]) -> dict[str, Any]:
    """DVC's model registry entries for the ONNX files the export stage writes (one per arm, one per class)."""
    from lusynth.params import stage_params
    from lusynth.util import slugify

    arms = stage_params("experiment", params["profile"], params.get("experiment") or {}).arms
    out: dict[str, Any] = {}
    for arm in arms:
        slug = slugify(arm, keep="A-Za-z0-9_-")
        out[f"classifier-{slugify(arm, keep='a-z0-9')}"] = {
            "path": f"models/onnx/classifier-{slug}.onnx", "type": "model",
            "desc": f"lung-ultrasound classifier, arm {arm} (best of the grid by validation AUC), ONNX",
            "labels": ["onnx", "classifier", slugify(arm, keep="a-z0-9")]}
    for label in params["classes"]:
        slug = slugify(label, keep="A-Za-z0-9_-")
        out[f"generator-{slugify(label, keep='a-z0-9')}"] = {
            "path": f"models/onnx/generator-{slug}.onnx", "type": "model",
            "desc": f"GAN generator of class {label} (largest training fraction), ONNX",
            "labels": ["onnx", "generator", slugify(label, keep="a-z0-9")]}
    return out


def render(params: Mapping[str, Any] | None = None) -> str:
    """The text of dvc.yaml for ``params`` (default: the repository's params.yaml)."""
    from lusynth.stages import STAGES

    params = dict(params) if params is not None else _read_params()
    lists = task_lists(params)
    stages: dict[str, Any] = {}
    for row in STAGES:
        if row.name == "train_classifier":
            if lists["real_cells"]:
                stages[REAL_CLASSIFIER_STAGE] = _stage_spec(row, matrix="real_cells", synthetic=[])
            if lists["synthetic_cells"]:
                stages[row.name] = _stage_spec(row, matrix="synthetic_cells", synthetic=_synthetic_paths(list(params["classes"])))
            continue
        if row.name == "train_gan":  # one DVC stage per family: each tracks only the gan fields its family reads
            for family in _families(lists):
                stages[gan_stage(family)] = _stage_spec(row, matrix=f"gans_{family}", synthetic=None, family=family)
            continue
        key_ref = row.key or ("lusynth.keys:GanKey" if row.name in PER_GAN else None)
        stages[row.name] = _stage_spec(row, matrix="gans" if key_ref else None, synthetic=None)
    doc = {"vars": ["params.yaml"], "stages": stages, "artifacts": _artifacts(params)}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=200)


def _families(lists: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    return [k.removeprefix("gans_") for k in lists if k.startswith("gans_")]


#: the line of params.yaml after which the generated task lists follow
TASKS_MARKER = "# --- task lists: generated by `python -m lusynth_pipelines.dvc` from the experiment section; do not edit ---"

PARAMS_HEADER = """\
# Parameters of the DVC loop, written by `python -m lusynth_pipelines.dvc [--profile NAME]`: every
# field of every section, resolved from the profile named below (src/lusynth/profiles.yaml), so
# DVC tracks the values each stage runs with. Change a value here or with
# `dvc exp run -S gan.epochs=5`; the stages that read that section (and what follows them) re-run.
# `python -m lusynth_pipelines.dvc` keeps edited values; `--profile NAME` rewrites all of them.
"""


def task_lists(params: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``gans``, ``real_cells`` and ``synthetic_cells`` of a params.yaml document: the plans of its
    grid (the profile's with its ``experiment`` values), for its ``classes``."""
    from lusynth.experiment import plan_gans
    from lusynth.params import stage_params
    from lusynth.stages import classifier_cells

    grid = stage_params("experiment", params["profile"], params.get("experiment") or {})
    gans = [k.as_dict() for k in plan_gans(params["classes"], grid.fractions, grid)]
    return {"gans": gans, **{f"gans_{f}": [g for g in gans if g["generator"] == f] for f in grid.generators},
            "real_cells": [c.as_dict() for c in classifier_cells(grid, synthetic=False)],
            "synthetic_cells": [c.as_dict() for c in classifier_cells(grid, synthetic=True)]}


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=400).strip().removesuffix("\n...").strip()


def render_params(text: str | None = None, *, profile: str | None = None,
                  overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """params.yaml's text: every section complete (values in ``text`` kept, missing ones from the
    profile; ``profile`` given: all from that profile; ``overrides`` on top) and the task lists regenerated."""
    from lusynth.experiment import check_run
    from lusynth.params import SECTIONS, as_dict, field_help, merge_overrides, resolve, section_class

    old = (yaml.safe_load(text.split(TASKS_MARKER)[0]) or {}) if text else {}
    doc: dict[str, Any] = {"profile": profile or old.get("profile") or "demo", "source": old.get("source", ""),
                           "classes": old.get("classes") or ["consolidation", "no_consolidation"]}
    kept = {} if profile else {s: dict(old.get(s) or {}) for s in SECTIONS}
    resolved = resolve(SECTIONS, doc["profile"], merge_overrides(kept, overrides))
    check_run(resolved, where="params.yaml")
    lines = [PARAMS_HEADER.rstrip("\n"),
             f"profile: {doc['profile']}  # the profile the values below came from (a label on the MLflow runs)",
             f"source: {_flow(doc['source'])}  # folder, labels CSV, s3:// prefix or dvc://PATH@REV; \"\" = the built-in phantom",
             f"classes: {_flow(list(doc['classes']))}  # one GAN per class; must match the data's classes"]
    for section in ("experiment", *(s for s in SECTIONS if s != "experiment")):
        helps = field_help(section_class(section))
        lines.append(f"{section}:")
        for name, value in as_dict(resolved[section]).items():
            comment = " ".join(str(helps.get(name, "")).split())
            comment = comment if len(comment) <= 100 else comment[:99].rstrip() + "…"
            lines.append(f"  {name}: {_flow(value)}" + (f"  # {comment}" if comment else ""))
        doc[section] = as_dict(resolved[section])
    lists = task_lists(doc)
    lines.append(TASKS_MARKER)
    for name, items in lists.items():
        lines.append(f"{name}:" + ("" if items else " []"))
        lines += [f"- {_flow(item)}" for item in items]
    return "\n".join(lines) + "\n"


def write(root: Path = ROOT, *, profile: str | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None,
          check: bool = False) -> list[Path]:
    """Write ``root``'s params.yaml (values kept, or from ``profile``, ``overrides`` on top) and the
    dvc.yaml that follows from it; ``check``: write nothing, return the files that would change."""
    params_path, dvc_path = root / "params.yaml", root / "dvc.yaml"
    params_text = render_params(params_path.read_text() if params_path.is_file() else None, profile=profile, overrides=overrides)
    targets = {params_path: params_text, dvc_path: render(yaml.safe_load(params_text.split(TASKS_MARKER)[0]))}
    changed = [t for t, text in targets.items() if not t.is_file() or t.read_text() != text]
    if not check:
        for target in changed:
            target.write_text(targets[target])
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m lusynth_pipelines.dvc [--profile NAME] [--set SECTION.KEY=VALUE ...] [--root DIR] [--check]``:
    write (or check) params.yaml and dvc.yaml of the repository (or ``--root``)."""
    import argparse

    from lusynth.errors import LusynthError
    from lusynth.params import parse_assignments

    ap = argparse.ArgumentParser(prog="python -m lusynth_pipelines.dvc", description=main.__doc__)
    ap.add_argument("--profile", help="rewrite every value of params.yaml from this profile (default: keep its values)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="change a value (repeat)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the DVC repository (default: this checkout)")
    ap.add_argument("--check", action="store_true", help="exit 1 when either file is stale; write nothing")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        changed = write(args.root, profile=args.profile, overrides=parse_assignments(args.set), check=args.check)
    except LusynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check and changed:
        print(f"{', '.join(map(str, changed))} stale; run `python -m lusynth_pipelines.dvc`", file=sys.stderr)
        return 1
    for target in [] if args.check else changed:
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
