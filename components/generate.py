"""KFP component: synthetic frames from one trained GAN, near-copies filtered out."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def generate(gan: Input[Model], frames: Input[Dataset], profile: str, n_per_class: int, synthetic: Output[Dataset]) -> None:
    """``n_per_class`` synthetic frames (0 = profile default) as a frame store marked synthetic."""
    from lusynth.gan.generate import SyntheticSet
    from lusynth.stages import generate_stage, zero_is_unset

    outcome = generate_stage(gan.path, frames.path, synthetic.path, profile=profile, overrides=zero_is_unset(n_per_class=n_per_class))
    syn = SyntheticSet.load(synthetic.path)
    fractions = sorted({k.fraction for k in syn.keys})
    synthetic.metadata.update({"label": ",".join(k.label for k in syn.keys), "fraction": fractions[0] if len(fractions) == 1 else None,
                               "n_frames": syn.n_frames, "content_digest": syn.store.digest, "cached": outcome.cached})
