"""KFP components: the experiment plan (which GANs and which classifiers to train) and each stage's
own settings.

Two single-output plan components rather than one with a NamedTuple: kfp.local (2.17) cannot fan a
ParallelFor out over one field of a multi-output task.

Why tasks get their stage's settings and not the run's whole ``overrides``: KFP's cache (on a cluster,
and kfp.local's) keys a task on its input values, so with the whole dict any change (a classifier
seed, one family's learning rate) would miss every task's cache and retrain every GAN. Each task gets
:func:`lusynth.stages.stage_overrides`, the fields its stage-cache key covers. A task inside a loop
gets them from its loop item (``job.<stage>``; a GAN task its family's): kfp.local 2.17.3 hands a
loop body the loop item in place of a parameter from a task outside the loop (tested), and an item's
fields it passes as they are.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_gans(frames: Input[Dataset], profile: str, overrides: dict) -> list:
    """One GAN task per class of the frame store, training fraction, GAN seed, generator family and
    outer split of the grid (the store must hold the grid's folds): {"key": {label, fraction, gan_seed,
    fold, generator}, "train_gan": that family's settings, "generate": ..., "audit": ...} (each stage's
    own, lusynth.stages.stage_overrides)."""
    from lusynth.data.framestore import FrameStore
    from lusynth.experiment import check_families_fit
    from lusynth.experiment import plan_gans as plan
    from lusynth.params import stage_params
    from lusynth.stages import stage_overrides

    store = FrameStore.load(frames.path)
    experiment = stage_params("experiment", profile, overrides.get("experiment"))
    # every family must fit the store's frames (a run submitted from the KFP UI skipped the CLI's check)
    check_families_fit(experiment.generators, stage_params("gan", profile, overrides.get("gan")), store.image_size,
                       where=f"{frames.path}: image size {store.image_size}")
    shared = {s: stage_overrides(s, profile, overrides) for s in ("generate", "audit")}
    return [{"key": k.as_dict(), "train_gan": stage_overrides("train_gan", profile, overrides, key=k), **shared}
            for k in plan(store.classes, store.train_fractions, experiment, store_splits=store.n_splits)]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_classifiers(profile: str, overrides: dict, synthetic: bool) -> list:
    """One classifier task per cell of the experiment grid whose arm reads synthetic frames
    (``synthetic``) or does not: {"key": {arm, fraction, seed, ratio, gan_seed, fold, generator},
    "train_classifier": the stage's own settings}; one placeholder item (``key`` {}) when there is none
    (lusynth.stages.classifier_jobs: why two loops, why the placeholder)."""
    from lusynth.stages import classifier_jobs

    return classifier_jobs(profile, overrides, synthetic=synthetic)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def stage_settings(source: str, profile: str, overrides: dict) -> NamedTuple(  # type: ignore[valid-type]
        "StageSettings", [("ingest", dict), ("evaluate", dict), ("export_register", dict)]):
    """The own settings (lusynth.stages.stage_overrides) of each stage outside the loops, one output per
    stage, named after it. (KFP runs this function's source alone: the names are written out here too,
    and a test checks each output holds its stage's settings.)"""
    from lusynth.stages import stage_overrides

    names = ("ingest", "evaluate", "export_register")
    options = {"ingest": {"source": source}}  # the phantom's settings count only without a source
    return tuple(stage_overrides(s, profile, overrides, options=options.get(s)) for s in names)
