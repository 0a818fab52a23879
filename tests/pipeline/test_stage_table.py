"""The stage table is the one place a stage is named: the CLI, the KFP components, the pipeline and
dvc.yaml must all agree with it. Each test fails when a stage is added to the table but not to one
of them, or when a parameter gets a second default somewhere."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
import yaml

from lusynth.cli import app
from lusynth.cli.stages import RUNTIME_FIELDS, stage_flags
from lusynth.params import SECTIONS, as_dict, profile_names, resolve, section_class
from lusynth.stages import STAGES, artefact_class

ROOT = Path(__file__).resolve().parents[2]
#: KFP tasks that are engine plumbing, not stages (DVC gets the same from its DAG and matrix)
KFP_ONLY_TASKS = {"plan_gans", "plan_classifiers", "stage_settings", "bundle_synthetic", "open_parent_run", "close_parent_run"}


def _click_command(name: str) -> click.Command:
    group = typer.main.get_command(app)
    return group.commands[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("row", STAGES, ids=lambda r: r.name)
def test_every_stage_has_a_cli_command_with_a_flag_per_field(row) -> None:
    cmd = _click_command(row.command)
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])} | {o for p in cmd.params for o in getattr(p, "secondary_opts", [])}
    for i in row.inputs:
        assert set(i.flags) <= opts, (row.name, i.name)
    for section in row.sections:
        if section in row.set_only:
            continue
        for f in dataclasses.fields(section_class(section)):
            if f.name in RUNTIME_FIELDS:
                continue
            flag = "--" + f.name.replace("_", "-")
            assert flag in opts or f"--{section}-{f.name.replace('_', '-')}" in opts, (row.command, section, f.name)
    # every parameter flag defaults to "the profile's value": the dataclass/profile is the only default
    for f in stage_flags(row):
        if f.dest == "param":
            assert f.parameter.default.default is None, (row.command, f.section, f.name)
    assert {"--set", "--params-file", "--profile", "--out"} <= opts


def _component(row):
    mod = importlib.import_module(f"lusynth_components.{row.name}")
    return mod, getattr(mod, row.name)


@pytest.mark.parametrize("row", STAGES, ids=lambda r: r.name)
def test_every_stage_has_a_component_that_calls_run_stage(row) -> None:
    mod, comp = _component(row)
    inputs = comp.component_spec.inputs or {}
    params = set(inputs)
    # one parameter source: the profile and per-section overrides (a keyed stage may take them inside its
    # job, as train_gan does: its family's), never a stage field written out again
    assert "profile" in params and ("overrides" in params or row.key), row.name
    fields = {f.name for s in row.sections for f in dataclasses.fields(section_class(s))}
    assert not (params & fields - {"source"}), (row.name, params & fields)
    for i in row.inputs:
        assert i.name in params, (row.name, i.name)
    if row.key:
        assert "job" in params, row.name
    # the body is one call of the library's run_stage for this very stage
    source = inspect.getsource(mod)
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "run_stage"]
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant) and calls[0].args[0].value == row.name, row.name


def test_the_pipeline_runs_every_stage_and_only_plumbing_besides() -> None:
    from lusynth_pipelines.experiment import STAGE_RESOURCES

    assert set(STAGE_RESOURCES) == {r.name for r in STAGES} | KFP_ONLY_TASKS


def test_the_pipeline_has_no_parameter_written_out_again() -> None:
    from lusynth_pipelines.experiment import make_pipeline

    sig = inspect.signature(make_pipeline(local=True).pipeline_func).parameters
    assert set(sig) == {"source", "profile", "overrides", "experiment", "register", "parent_run_id", "gan_checkpoints"}
    assert sig["overrides"].default == {} and sig["profile"].default == "demo"


def test_dvc_yaml_is_generated_from_the_table() -> None:
    from lusynth_pipelines.dvc import REAL_CLASSIFIER_STAGE, render, write

    assert write(check=True) == [], "dvc.yaml or params.yaml is stale: run `python -m lusynth_pipelines.dvc`"
    assert (ROOT / "dvc.yaml").read_text() == render()
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    dvc = doc["stages"]
    # train_classifier is two DVC stages: the arms without synthetic frames depend on no synthetic data
    assert set(dvc) == {r.name for r in STAGES} | {REAL_CLASSIFIER_STAGE}
    for name, spec in dvc.items():
        row = next(r for r in STAGES if r.name == name.replace(REAL_CLASSIFIER_STAGE, "train_classifier"))
        assert f" lusynth {row.command} " in f" {spec['cmd']}", name
        assert "--profile ${profile} --params-file params.yaml" in spec["cmd"]
        # one MLflow store per DVC workspace, not one per output folder
        assert spec["cmd"].startswith("LUSYNTH_TRACKING_DIR=runs/dvc "), name
        # the values the stage runs with, not the profile's name or the whole profiles file
        assert list(dict.fromkeys(p.partition(".")[0] for p in spec["params"] if p != "source")) == list(row.sections), name
        assert "profile" not in spec["params"] and "src/lusynth/profiles.yaml" not in spec["deps"], name
        # a stage depends on the code it runs, not on all of src/
        module = row.function.partition(":")[0]
        assert "src/" + module.replace(".", "/") + ".py" in spec["deps"], name
        assert all(not d.startswith("src/") or d.endswith(".py") for d in spec["deps"]) and "src/lusynth" not in spec["deps"]
    assert not [d for d in dvc["ingest"]["deps"] if d.startswith(("src/lusynth/gan/", "src/lusynth/evaluate/", "src/lusynth/export/"))]
    assert not [d for d in dvc["train_gan"]["deps"] if d.startswith(("src/lusynth/evaluate/", "src/lusynth/export/", "src/lusynth/privacy/"))]
    assert dvc["ingest"]["params"] == ["source", "ingest", "phantom", "experiment.fractions"]
    assert not [d for d in dvc[REAL_CLASSIFIER_STAGE]["deps"] if d.startswith("data/synthetic")]
    assert "--synthetic" not in dvc[REAL_CLASSIFIER_STAGE]["cmd"]
    # a synthetic-arm cell reads the sets of its own fraction, GAN seed, fold and family, one per class
    assert sorted(d for d in dvc["train_classifier"]["deps"] if d.startswith("data/synthetic")) == [
        f"data/synthetic/{c}@${{item.cell.fraction}}-g${{item.cell.gan_seed}}-k${{item.cell.fold}}-${{item.cell.generator}}" for c in ("consolidation", "no_consolidation")]
    # DVC's model registry: every exported ONNX file
    arts = doc["artifacts"]
    assert {a["path"] for a in arts.values()} == {
        "models/onnx/classifier-real.onnx", "models/onnx/classifier-real-aug.onnx", "models/onnx/classifier-real-synthetic.onnx",
        "models/onnx/classifier-synthetic.onnx", "models/onnx/generator-consolidation.onnx", "models/onnx/generator-no_consolidation.onnx"}
    assert all(a["type"] == "model" and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n, a in arts.items())


def test_params_yaml_holds_every_value_of_its_profile() -> None:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(SECTIONS) <= set(p), set(SECTIONS) - set(p)
    resolved = resolve(SECTIONS, p["profile"], {s: p[s] for s in SECTIONS})  # valid
    for s in SECTIONS:
        # every field written out, so DVC tracks the values (a profile edit shows as a params change)
        assert set(p[s]) == {f.name for f in dataclasses.fields(section_class(s))}, s
        assert p[s] == as_dict(resolved[s]), s  # written as the dataclass holds them (lists, not strings)
    assert p["profile"] in profile_names()
    # the task lists DVC's matrix runs over are the grid's plans
    from lusynth_pipelines.dvc import task_lists

    lists = task_lists(p)
    assert {k: p[k] for k in lists} == lists, "params.yaml task lists are stale"
    assert set(lists) == {"gans", *(f"gans_{f}" for f in p["experiment"]["generators"]), "real_cells", "synthetic_cells"}
    assert {c["arm"] for c in p["real_cells"]} == {"real", "real+aug"}


def test_the_dvc_generator_keeps_edited_values_and_resets_them_from_a_profile(tmp_path: Path) -> None:
    from lusynth_pipelines.dvc import main

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert main(["--root", str(tmp_path), "--set", "gan.epochs=3", "--set", "experiment.fractions=1.0"]) == 0
    p = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert p["gan"]["epochs"] == 3 and p["experiment"]["fractions"] == [1.0]
    assert len(p["gans"]) == 2 * p["experiment"]["folds"]  # a GAN per class and outer fold
    assert main(["--root", str(tmp_path)]) == 0  # kept when regenerated
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["gan"]["epochs"] == 3
    assert main(["--root", str(tmp_path), "--profile", "paper"]) == 0
    p = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert p["profile"] == "paper" and p["gan"]["epochs"] == 200 and p["ingest"]["image_size"] == 256
    assert main(["--root", str(tmp_path), "--set", "gan.nope=1"]) == 2


def test_profiles_come_from_the_yaml_alone() -> None:
    assert profile_names() == ("demo", "paper", "tiny")
    for name in profile_names():
        resolve(SECTIONS, name)  # every profile resolves every section


def test_stage_artefacts_load_and_keys_are_exact() -> None:
    from lusynth.keys import Cell, GanKey

    for row in STAGES:
        for ref in [row.output, *(i.artefact for i in row.inputs)]:
            assert callable(getattr(artefact_class(ref), "load", None)), ref
    assert GanKey("a", 0.5) == GanKey("a", "0.50000000001") and hash(GanKey("a", 0.5)) == hash(GanKey("a", 0.5000000000001))
    assert Cell("real", 1, 0) == Cell("real", 1.0, "0")



@pytest.mark.parametrize("row", STAGES, ids=lambda r: r.name)
def test_a_stages_artefacts_key_and_parameters_load_without_torch(row) -> None:
    """What a task needs before it runs anything, and all that a task served from the stage cache
    needs (its parameters, its task key, its input and output artefacts), imports neither torch nor
    scikit-learn: on a rerun each of the pipeline's tasks is a fresh process, and importing them cost
    about 2 s a task. A package ``__init__`` that imports its training module, or a stage row that
    names an artefact inside one, brings them back."""
    code = ("import sys\nfrom lusynth.params import section_class\nfrom lusynth.stages import artefact_class, stage\n"
            f"row = stage({row.name!r})\n"
            "row.output_class(); row.key_class(); [artefact_class(i.artefact) for i in row.inputs]; [section_class(s) for s in row.sections]\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'mlflow') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]", (row.name, res.stdout)


#: the files a stage writes, and the one module allowed to name each (its artefact module)
OWNED_FILES = {
    "gan.json": "src/lusynth/gan/", "fidelity_history.json": "src/lusynth/gan/",
    "classifier.json": "src/lusynth/classifier/", "history.json": "src/lusynth/classifier/train.py",
    "header.json": "src/lusynth/data/framestore.py", "manifest.csv": "src/lusynth/data/framestore.py",
    "report.json": "src/lusynth/report/render.py", "export.json": "src/lusynth/export/stage.py",
    "ingest_report.json": "src/lusynth/data/ingest_report.py",
    "audit.json": "src/lusynth/privacy/run.py", "audit.md": "src/lusynth/privacy/run.py",
}


def test_no_stage_reads_another_stages_file_by_name() -> None:
    offenders = []
    for path in [*ROOT.glob("src/lusynth/**/*.py"), *ROOT.glob("components/*.py"), *ROOT.glob("pipelines/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in OWNED_FILES:
                if not rel.startswith(OWNED_FILES[node.value]):
                    offenders.append(f"{rel}:{node.lineno} {node.value}")
    assert not offenders, offenders


def test_no_artefact_is_matched_with_a_float_tolerance() -> None:
    pattern = re.compile(r"abs\([^)]*fraction[^)]*\)\s*[<>]=?\s*1e-")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in ROOT.glob("src/lusynth/**/*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_runtime_switches_are_run_context_not_parameters() -> None:
    """track/device/threads change no result: they are the RunContext's, in no section and no cache key."""
    from lusynth.runtime import RunContext

    assert set(RUNTIME_FIELDS) <= {f.name for f in dataclasses.fields(RunContext)}
    for section in SECTIONS:
        assert not set(RUNTIME_FIELDS) & {f.name for f in dataclasses.fields(section_class(section))}, section


@pytest.mark.parametrize("profile", ["tiny", "demo"])  # paper: a larger phantom (its ingest alone takes ~30 s)
def test_a_profiles_own_phantom_gives_every_gan_the_two_training_patients_per_class_the_audit_needs(
    profile: str, tmp_path: Path
) -> None:
    """`lusynth run --profile tiny` once failed in every audit task: at fraction 0.5 a fold's GAN trained on
    1 patient per class, and the patient-aware near-copy ratio needs 2."""
    from lusynth.data.framestore import open_store
    from lusynth.params import stage_params
    from lusynth.runtime import RunContext
    from lusynth.stages import run_stage

    store = open_store(run_stage("ingest", tmp_path / "frames", profile=profile, ctx=RunContext(progress=False, track=False)).artefact.path)
    grid = stage_params("experiment", profile)
    fewest = min((len(store.patients(store.view(k, "train", label=c, fraction=f))), k, c, f)
                 for k in range(grid.folds) for c in store.classes for f in grid.fractions)
    assert fewest[0] >= 2, f"profile {profile}: fold {fewest[1]}, class {fewest[2]}, fraction {fewest[3]}: {fewest[0]} training patient(s)"


def test_each_familys_gans_are_a_dvc_stage_tracking_only_the_gan_fields_that_family_reads() -> None:
    """With both families in the grid, dvc.yaml has train_gan (the DCGAN) and train_gan_fastgan, each a
    matrix over its own GANs and tracking only its family's gan fields (the stage cache's rule), so
    ``dvc exp run -S gan.fastgan_lr=...`` re-runs FastGAN-lite's GANs and what follows, never a DCGAN."""
    from lusynth.gan.params import FAMILY_ONLY, GanParams
    from lusynth_pipelines.dvc import render, render_params

    text = render_params(profile="tiny", overrides={"experiment": {"generators": ["dcgan", "fastgan"], "folds": 2}})
    p = yaml.safe_load(text.split("# --- task lists")[0])
    lists = yaml.safe_load(text)
    stages = yaml.safe_load(render(p))["stages"]
    assert "train_gan" in stages and "train_gan_fastgan" in stages
    every = {f"gan.{f.name}" for f in dataclasses.fields(GanParams)}
    for name, family, other in (("train_gan", "dcgan", "fastgan"), ("train_gan_fastgan", "fastgan", "dcgan")):
        spec = stages[name]
        assert spec["matrix"] == {"gan": f"${{gans_{family}}}"}
        tracked = {x for x in spec["params"] if x.startswith("gan.")}
        assert tracked == every - {f"gan.{f}" for f in FAMILY_ONLY[other]}, name
        assert "near_copy" in spec["params"]
        assert {g["generator"] for g in lists[f"gans_{family}"]} == {family}
    assert len(lists["gans_dcgan"]) + len(lists["gans_fastgan"]) == len(lists["gans"]) == 2 * len(p["experiment"]["fractions"]) * 2 * 2  # class x fraction x fold x family
    # generate and audit still run over every GAN
    assert stages["generate"]["matrix"] == stages["audit"]["matrix"] == {"gan": "${gans}"}
