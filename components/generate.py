"""KFP component: synthetic frames from one trained GAN, near-copies filtered out."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def generate(gan: Input[Model], frames: Input[Dataset], profile: str, n_per_class: int, synthetic: Output[Dataset]) -> None:
    """``n_per_class`` synthetic frames (0 = profile default) as a frame store marked synthetic."""
    import json
    from pathlib import Path

    from lusynth.stages import generate_stage, zero_is_unset

    outcome = generate_stage(gan.path, frames.path, synthetic.path, profile=profile, overrides=zero_is_unset(n_per_class=n_per_class))
    header = json.loads((Path(synthetic.path) / "header.json").read_text())
    synthetic.metadata.update({k: header.get(k) for k in ("label", "fraction", "n_frames", "content_digest")})
    synthetic.metadata["cached"] = outcome.cached
