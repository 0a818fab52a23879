"""KFP component: gather every GAN's synthetic store into one bundle for the classifier loop."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bundle_synthetic(synthetic: Input[list[Dataset]], bundle: Output[Dataset]) -> None:
    """One directory holding each synthetic store as ``<label>@<fraction>/``."""
    from lusynth.stages import bundle_synthetic as bundle_stores

    bundle_stores([s.path for s in synthetic], bundle.path)
    bundle.metadata["stores"] = len(synthetic)
