"""dvc.yaml and the KFP pipeline must not drift apart: the same stages, the same parameters, and
each DVC command calling the CLI command whose library entry point the KFP component calls."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import yaml

import lusynth.stages as stages
from lusynth.cli import app

ROOT = Path(__file__).resolve().parents[2]
#: KFP tasks that are engine plumbing (DVC gets the same from its DAG and matrix expansion)
KFP_ONLY_TASKS = {"plan_gans", "plan_classifiers", "bundle_synthetic"}
#: KFP parameters that are engine plumbing: tracking lineage, and registering (DVC exports only)
KFP_ONLY_PARAMS = {"parent_run_id", "register", "gan_checkpoints"}  # gan_checkpoints: for retried pods; the CLI reads LUSYNTH_GAN_CHECKPOINTS
#: DVC parameters that exist because DVC cannot interpolate a list into a command, or expands a matrix
DVC_ONLY_PARAMS = {"fractions_csv", "classes"}
#: stage -> (CLI command, the lusynth.stages entry point both the CLI and the component call)
ENTRY = {
    "ingest": ("ingest", "ingest_stage"),
    "train_gan": ("train-gan", "train_gan_stage"),
    "generate": ("generate", "generate_stage"),
    "train_classifier": ("train-classifier", "train_classifier_stage"),
    "evaluate": ("evaluate", "evaluate_stage"),
    "export_register": ("export", "export_register_stage"),
}


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _kfp_stages() -> set[str]:
    from lusynth_pipelines.experiment import STAGE_RESOURCES

    return set(STAGE_RESOURCES)


def test_same_stages() -> None:
    assert set(_dvc()["stages"]) == _kfp_stages() - KFP_ONLY_TASKS == set(ENTRY)


def test_same_parameters() -> None:
    from lusynth_pipelines.experiment import make_pipeline

    kfp_params = set(inspect.signature(make_pipeline(local=True).pipeline_func).parameters)
    dvc_params = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert dvc_params - DVC_ONLY_PARAMS == kfp_params - KFP_ONLY_PARAMS
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert [float(x) for x in p["fractions_csv"].split(",")] == [float(x) for x in p["fractions"]]
    # the defaults agree too
    sig = inspect.signature(make_pipeline(local=True).pipeline_func).parameters
    for name in dvc_params - DVC_ONLY_PARAMS:
        assert sig[name].default == p[name], name


def test_each_dvc_command_is_the_cli_of_the_same_entry_point() -> None:
    commands = {c.name: c.callback for c in app.registered_commands}
    for stage, spec in _dvc()["stages"].items():
        cli, entry = ENTRY[stage]
        assert re.match(rf"lusynth {re.escape(cli)}\b", spec["cmd"]), (stage, spec["cmd"])
        assert "--profile ${profile}" in spec["cmd"], stage
        # the CLI command and the KFP component both go through lusynth.stages.<entry>
        assert f"{entry}(" in inspect.getsource(commands[cli]), (cli, entry)
        component = (ROOT / "components").glob("*.py")
        assert any(f"{entry}(" in f.read_text() for f in component), entry
        assert callable(getattr(stages, entry))


def test_matrix_covers_the_same_grid_as_the_plans() -> None:
    dvc = _dvc()["stages"]
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert dvc["train_gan"]["matrix"] == {"label": "${classes}", "fraction": "${fractions}"}
    assert dvc["train_classifier"]["matrix"] == {"arm": "${arms}", "fraction": "${fractions}", "seed": "${seeds}"}
    grid = stages.plan_classifiers(p["arms"], p["fractions"], p["seeds"])
    assert len(grid) == len(p["arms"]) * len(p["fractions"]) * len(p["seeds"])
