"""KFP component: the privacy audit of one synthetic set (its unfiltered output)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from lusynth_components.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def audit(frames: Input[Dataset], synthetic: Input[Dataset], gans: Input[Model], profile: str, overrides: dict,
          audit: Output[Dataset]) -> None:
    """The audit's decision (pass / fail / insufficient_evidence), its figures and report; the GAN
    that made the set adds the discriminator membership attack."""
    from lusynth.stages import run_stage

    outcome = run_stage("audit", audit.path, inputs={"frames": frames.path, "synthetic": synthetic.path, "gans": [gans.path]},
                        profile=profile, overrides=overrides)
    audit.metadata.update({**outcome.artefact.kfp_metadata(), "cached": outcome.cached})
