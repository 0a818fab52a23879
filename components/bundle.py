"""KFP component: gather every GAN's synthetic set into one bundle for the classifier loop of the arms that read synthetic frames."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bundle_synthetic(synthetic: Input[list[Dataset]], bundle: Output[Dataset]) -> None:
    """One directory holding every synthetic set (the compiler cannot pass a fan-in into a loop)."""
    from lusynth.stages import bundle as bundle_sets

    bundle_sets([s.path for s in synthetic], bundle.path)
    bundle.metadata["sets"] = len(synthetic)
