"""Privacy audit: planted training copies are caught, fresh frames are not; the gate decides."""


import numpy as np
import pytest

from lusynth.data.framestore import open_store
from lusynth.evaluate.audit import audit_synthetic, gate_audit
from lusynth.evaluate.params import EvaluateParams
from tests.classifier import write_real_store


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    s = open_store(write_real_store(tmp_path_factory.mktemp("audit") / "real"))
    label = s.classes[1]
    get = lambda **kw: np.asarray(s.frames[s.indices(label=label, **kw)])  # noqa: E731
    return {"train": get(split="train"), "holdout": get(split="holdout"), "val": get(split="val")}


def test_planted_training_copies_are_caught(frames: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    copies = np.clip(frames["train"] + rng.normal(0, 3, frames["train"].shape), 0, 255).astype(np.uint8)
    params = EvaluateParams(n_bootstrap=100)
    # stand-in discriminator that remembers its training frames: high score for members
    train_flat = frames["train"].reshape(len(frames["train"]), -1).astype(float)
    memorising_d = lambda f: -np.min(((f.reshape(len(f), -1)[:, None].astype(float) - train_flat[None]) ** 2).sum(-1), 1)  # noqa: E731
    res = audit_synthetic(copies, frames["holdout"], frames["train"], params=params, discriminator=memorising_d)
    assert res["privacy"]["distance_mia_auc"] > 0.9
    assert res["privacy"]["discriminator_mia_auc"] > 0.9
    assert res["privacy"]["memorisation_rate"] > 0.5
    gate = gate_audit(res["privacy"], params)
    assert not gate["passed"] and any("memorisation_rate" in r for r in gate["reasons"])


def test_fresh_frames_do_not_leak(frames: dict[str, np.ndarray]) -> None:
    # frames of patients the "GAN" never saw (validation patients) play a perfect non-memorising generator
    params = EvaluateParams(n_bootstrap=100)
    res = audit_synthetic(frames["val"], frames["holdout"], frames["train"], params=params,
                          embed=lambda f: f.reshape(len(f), -1)[:, ::64].astype(float) / 255,
                          class_prob=lambda f: np.full(len(f), 0.8))
    assert res["privacy"]["distance_mia_auc"] < 0.75
    assert res["privacy"]["memorisation_rate"] <= 0.05
    assert res["fidelity"]["confidence"] == pytest.approx(0.8)
    assert {"fid_embed", "kid_embed", "nn1_embed", "mmd_pixels"} <= set(res["fidelity"])
    gate = gate_audit(res["privacy"], params)
    assert gate["notes"]  # no discriminator given: its check is skipped and said so


def test_the_audit_reports_how_much_fine_detail_the_synthetic_frames_keep(frames: dict[str, np.ndarray]) -> None:
    """Unseen real patients' frames keep about the real test frames' fine detail; the same frames
    blurred (2x2 box average, upsampled back) keep well under half of it, while the distribution
    measures need not notice (that is why the report shows it)."""
    import torch

    params = EvaluateParams(n_bootstrap=100)
    val = frames["val"]
    t = torch.from_numpy(val).float()[:, None]
    blurred = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(t, 2), scale_factor=2, mode="bilinear", align_corners=False)
    blurred_u8 = blurred[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    res = {name: audit_synthetic(f, frames["holdout"], frames["train"], params=params)["fidelity"] for name, f in (("real", val), ("blurred", blurred_u8))}
    ratio = {name: f["sharpness"] / f["sharpness_holdout"] for name, f in res.items()}
    assert res["real"]["sharpness_holdout"] == res["blurred"]["sharpness_holdout"] > 0
    assert 0.7 < ratio["real"] < 1.4 and ratio["blurred"] < 0.5 * ratio["real"]
