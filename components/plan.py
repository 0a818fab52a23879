"""KFP components: the experiment plan (which GANs and which classifiers to train).

Two single-output components rather than one with a NamedTuple: kfp.local (2.17) cannot fan a
ParallelFor out over one field of a multi-output task.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_gans(frames: Input[Dataset], fractions: list) -> list:
    """One GAN job {label, fraction} per class of the frame store and training fraction."""
    from lusynth.stages import plan_gans as plan

    return plan(frames.path, fractions)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_classifiers(arms: list, fractions: list, seeds: list) -> list:
    """One classifier job {arm, fraction, seed} per cell of the experiment grid."""
    from lusynth.stages import plan_classifiers as plan

    return plan(arms, fractions, seeds)
