"""KFP components: the experiment plan (which GANs and which classifiers to train).

Two single-output components rather than one with a NamedTuple: kfp.local (2.17) cannot fan a
ParallelFor out over one field of a multi-output task.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_gans(frames: Input[Dataset], profile: str, overrides: dict) -> list:
    """One GAN task {label, fraction, gan_seed, fold, generator} per class of the frame store, training
    fraction, GAN seed, generator family and outer split of the grid (the store must hold the grid's folds)."""
    from lusynth.data.framestore import FrameStore
    from lusynth.experiment import check_families_fit
    from lusynth.experiment import plan_gans as plan
    from lusynth.params import stage_params

    store = FrameStore.load(frames.path)
    experiment = stage_params("experiment", profile, overrides.get("experiment"))
    # every family must fit the store's frames (a run submitted from the KFP UI skipped the CLI's check)
    check_families_fit(experiment.generators, stage_params("gan", profile, overrides.get("gan")), store.image_size,
                       where=f"{frames.path}: image size {store.image_size}")
    return [k.as_dict() for k in plan(store.classes, store.train_fractions, experiment, store_splits=store.n_splits)]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_classifiers(profile: str, overrides: dict) -> list:
    """One classifier task {arm, fraction, seed, ratio, gan_seed, fold, generator} per cell of the experiment grid."""
    from lusynth.experiment import plan_classifiers as plan
    from lusynth.params import stage_params

    return [c.as_dict() for c in plan(stage_params("experiment", profile, overrides.get("experiment")))]
