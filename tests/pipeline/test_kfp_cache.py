"""What KFP's cache sees: each task's input values. A change to one stage's (or one generator
family's) settings must change the inputs of exactly the tasks that read it, so that a re-submission
retrains nothing else (KFP keys a task on its inputs; tests/pipeline/test_compile.py checks the
wiring, this file the values the plumbing tasks hand out, and test_local_run.py a real kfp.local
run with KFP's cache on)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lusynth.stages import STAGES, _prepare, stage, stage_overrides

BASE = {"experiment": {"generators": ["dcgan", "fastgan"], "fractions": [0.5, 1.0], "folds": 1}}


def _as_kfp(value):
    """A value after a trip through a KFP parameter (protobuf Struct: JSON, every number a double)."""
    def floats(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return [floats(x) for x in v]
        return {k: floats(x) for k, x in v.items()}

    return floats(json.loads(json.dumps(value)))


def _inputs(store, overrides: dict) -> dict[str, object]:
    """task -> the input values the plumbing gives it (as the pipeline wires them: test_compile.py):
    outside the loops stage_settings' output of the stage's name, inside them the loop item's fields."""
    from lusynth_components.plan import plan_classifiers, plan_gans, stage_settings

    settings = stage_settings.python_func(source="", profile="tiny", overrides=overrides)
    out: dict[str, object] = {name: _as_kfp(s) for name, s in zip(stage_settings.component_spec.outputs, settings, strict=True)}
    for job in plan_gans.python_func(frames=SimpleNamespace(path=str(store)), profile="tiny", overrides=overrides):
        k = job["key"]
        out[f"train_gan:{k['label']}@{k['fraction']}-{k['generator']}"] = _as_kfp((k, job["train_gan"]))
        out[f"generate:{k['label']}@{k['fraction']}-{k['generator']}"] = _as_kfp(job["generate"])
        out[f"audit:{k['label']}@{k['fraction']}-{k['generator']}"] = _as_kfp(job["audit"])
    for synthetic in (False, True):
        for job in plan_classifiers.python_func(profile="tiny", overrides=overrides, synthetic=synthetic):
            c = job["key"]
            out[f"train_classifier:{c['arm']}@{c['fraction']}-s{c['seed']}-{c['generator']}"] = _as_kfp((c, job["train_classifier"]))
    return out


def test_each_settings_output_is_its_stages_own_and_runs_the_same_work(phantom_store) -> None:
    from lusynth_components.plan import plan_classifiers, plan_gans, stage_settings

    overrides = {**BASE, "gan": {"fastgan_lr": 0.0015}, "classifier": {"steps": 3}}
    settings = stage_settings.python_func(source="", profile="tiny", overrides=overrides)
    for name, got in zip(stage_settings.component_spec.outputs, settings, strict=True):
        assert got == stage_overrides(name, "tiny", overrides, options={"source": ""} if name == "ingest" else None), name
    for job in plan_gans.python_func(frames=SimpleNamespace(path=str(phantom_store)), profile="tiny", overrides=overrides):
        assert job["train_gan"] == stage_overrides("train_gan", "tiny", overrides, key=job["key"])
        assert all(job[s] == stage_overrides(s, "tiny", overrides) for s in ("generate", "audit"))
    for synthetic in (False, True):
        for job in plan_classifiers.python_func(profile="tiny", overrides=overrides, synthetic=synthetic):
            assert job["train_classifier"] == stage_overrides("train_classifier", "tiny", overrides)
    # resolved on top of any other profile, after a trip through KFP, a stage's settings give it the very
    # parameters the whole overrides give it: the task does the same work
    for row in STAGES:
        key = {"label": "a", "fraction": 1.0, "generator": "fastgan"} if row.name == "train_gan" else None
        task_key = key or ({"arm": "real", "fraction": 1.0, "seed": 0} if row.key else None)
        mine = _as_kfp(stage_overrides(row.name, "tiny", overrides, key=key))
        assert _prepare(stage(row.name), "paper", mine, task_key, None)[1] == _prepare(stage(row.name), "tiny", overrides, task_key, None)[1]


@pytest.mark.parametrize(("change", "reaches"), [
    # one family's knob: that family's GANs only (and nothing else: generate/audit see the new GANs' artefacts)
    ({"gan": {"fastgan_lr": 0.0015}}, {"train_gan:fastgan"}),
    ({"gan": {"lr_g": 0.0004}}, {"train_gan:dcgan"}),
    ({"gan": {"epochs": 2}}, {"train_gan:dcgan", "train_gan:fastgan"}),
    ({"near_copy": {"percentile": 0.5}}, {"train_gan:dcgan", "train_gan:fastgan", "generate", "evaluate"}),
    # the classifier grid and the classifiers' settings: no GAN, no ingest
    ({"experiment": {"seeds": [0, 1]}}, set()),
    ({"experiment": {"arms": ["real", "synthetic"]}}, set()),
    ({"classifier": {"steps": 3}}, {"train_classifier"}),
    ({"generate": {"n_per_class": 12}}, {"generate"}),
    ({"audit": {"n_permutations": 301}}, {"audit"}),
    ({"evaluate": {"n_bootstrap": 60}}, {"evaluate"}),
    # what the frames are made of: ingest (and so, through the new frames, everything)
    ({"ingest": {"max_frames_per_clip": 4}}, {"ingest"}),
])
def test_a_change_reaches_only_the_tasks_that_read_it(phantom_store, change, reaches) -> None:
    from lusynth.params import merge_overrides

    before, after = _inputs(phantom_store, BASE), _inputs(phantom_store, merge_overrides(BASE, change))
    common = set(before) & set(after)  # a grid change adds or drops tasks (a classifier seed, an arm); the others' inputs stay
    assert len(common) > len(before) / 2
    changed = {t for t in common if before[t] != after[t]}

    def kind(task: str) -> str:  # "train_gan:dcgan" for every DCGAN task, "generate" for every generate task
        return task.split(":")[0] + (":" + task.rsplit("-", 1)[1] if task.startswith("train_gan:") else "")

    assert {kind(t) for t in changed} == reaches, change
    assert changed == {t for t in common if kind(t) in reaches}, change  # all the tasks of a kind, never some


@pytest.mark.parametrize("arms", [("real", "real+aug", "real+synthetic", "synthetic"), ("real", "synthetic"), ("real",), ("synthetic",),
                                  ("real+aug", "real+synthetic")])
def test_the_two_classifier_loops_split_the_grid_by_whether_an_arm_reads_synthetic_frames(arms) -> None:
    """The loop fed the synthetic bundle runs the cells whose arm reads synthetic frames, the other loop
    the rest: together every cell once. A loop with no cell runs one placeholder task, whose output
    evaluate and export_register drop (kfp.local cannot collect an empty loop)."""
    from lusynth.classifier.params import SYNTHETIC_ARMS
    from lusynth.experiment import plan_classifiers as plan
    from lusynth.params import stage_params
    from lusynth_components.plan import plan_classifiers

    overrides = {"experiment": {"arms": list(arms), "generators": ["dcgan", "fastgan"], "seeds": [0, 1]}}
    real, synthetic = (plan_classifiers.python_func(profile="tiny", overrides=overrides, synthetic=s) for s in (False, True))
    cells = [c.as_dict() for c in plan(stage_params("experiment", "tiny", overrides["experiment"]))]
    placeholder = {"key": {}, "train_classifier": {}}
    for jobs, reads in ((real, False), (synthetic, True)):
        mine = [c for c in cells if (c["arm"] in SYNTHETIC_ARMS) == reads]
        assert [j["key"] for j in jobs if j != placeholder] == mine
        assert (jobs == [placeholder]) == (not mine)


def test_a_placeholder_output_is_dropped_and_nothing_else(tmp_path) -> None:
    from lusynth.stages import PLACEHOLDER, without_placeholders, write_placeholder

    metrics = SimpleNamespace(path=str(tmp_path / "metrics"), metadata={}, log_metric=lambda k, v: metrics.metadata.__setitem__(k, v))
    hole = write_placeholder(tmp_path / "hole", "no cell", metrics)
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    assert sorted(p.name for p in hole.iterdir()) == [PLACEHOLDER]
    assert without_placeholders([model, hole, str(model)]) == [str(model), str(model)]
    assert json.loads((tmp_path / "metrics").read_text()) == {"placeholder": 1.0}
