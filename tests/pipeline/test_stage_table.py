"""The stage table is the one place a stage is named: the CLI, the KFP components, the pipeline and
dvc.yaml must all agree with it. Each test fails when a stage is added to the table but not to one
of them, or when a parameter gets a second default somewhere."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import click
import pytest
import typer
import yaml

from lusynth.cli import app
from lusynth.cli.stages import RUNTIME_FIELDS, stage_flags
from lusynth.params import SECTIONS, as_dict, profile_names, resolve, section_class, stage_params
from lusynth.stages import STAGES, artefact_class

ROOT = Path(__file__).resolve().parents[2]
#: KFP tasks that are engine plumbing, not stages (DVC gets the same from its DAG and matrix)
KFP_ONLY_TASKS = {"plan_gans", "plan_classifiers", "bundle_synthetic", "open_parent_run", "close_parent_run"}


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
    # one parameter source: the profile and per-section overrides, never a stage field written out again
    assert {"profile", "overrides"} <= params, row.name
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
    from lusynth_pipelines.dvc import render

    assert (ROOT / "dvc.yaml").read_text() == render(), "dvc.yaml is stale: run `python -m lusynth_pipelines.dvc`"
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(dvc) == {r.name for r in STAGES}
    for row in STAGES:
        spec = dvc[row.name]
        assert spec["cmd"].startswith(f"lusynth {row.command} "), row.name
        assert "--profile ${profile} --params-file params.yaml" in spec["cmd"]
        assert set(row.sections) <= set(spec["params"]), row.name
        # a stage depends on the code it runs
        module = row.function.partition(":")[0]
        assert "src/" + module.replace(".", "/") + ".py" in spec["deps"], row.name


def test_params_yaml_overrides_the_profile_and_repeats_only_the_grid() -> None:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(SECTIONS) <= set(p), set(SECTIONS) - set(p)
    # the grid is written out for DVC's matrix; it must be the profile's grid
    grid = stage_params("experiment", p["profile"])
    assert as_dict(grid) == {k: list(v) if isinstance(v, list) else v for k, v in p["experiment"].items()}
    # the task lists DVC's matrix runs over are the grid's plans
    from lusynth_pipelines.dvc import task_lists

    assert {k: p[k] for k in ("gans", "cells")} == task_lists(p), "params.yaml task lists are stale: run `python -m lusynth_pipelines.dvc`"
    assert all(not p[s] for s in SECTIONS if s != "experiment"), "params.yaml sections hold overrides only (empty by default)"
    resolve(SECTIONS, p["profile"], {s: p[s] for s in SECTIONS})  # and they are valid


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


#: the files a stage writes, and the one module allowed to name each (its artefact module)
OWNED_FILES = {
    "gan.json": "src/lusynth/gan/", "fidelity_history.json": "src/lusynth/gan/",
    "classifier.json": "src/lusynth/classifier/train.py", "history.json": "src/lusynth/classifier/train.py",
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
