"""Feature spaces: an edited copy of a training frame is still caught; unseen patients are not."""

from __future__ import annotations

import numpy as np
import pytest

from lusynth.data.framestore import open_store
from lusynth.privacy.core import run_audit
from lusynth.privacy.features import feature_spaces, spectrum
from lusynth.privacy.params import AuditParams

ROLE = {"train": "member", "val": "calibration", "holdout": "nonmember"}


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(x)  # the scanner's black border enters, nothing wraps round
    out[:, dy:, dx:] = x[:, : x.shape[1] - dy, : x.shape[2] - dx]
    return out


@pytest.fixture(scope="module")
def store(phantom_store):  # type: ignore[no-untyped-def]
    st = open_store(phantom_store)
    return np.asarray(st.frames), st.manifest["patient_id"].to_numpy(), st.labels_as_int(), st.manifest["split"].map(ROLE).to_numpy()


def _audit(store, synthetic: np.ndarray, syn_labels: np.ndarray, spaces: tuple[str, ...]) -> dict:  # type: ignore[no-untyped-def]
    frames, patients, labels, roles = store
    real, syn = feature_spaces(spaces, frames, synthetic, member=roles == "member", labels=labels, epochs=2)
    return run_audit(real, patients, labels, roles, syn, syn_labels, params=AuditParams(features=spaces, n_permutations=99, n_bootstrap=99))


def test_shifted_and_contrast_changed_copies_are_caught(store) -> None:  # type: ignore[no-untyped-def]
    frames, _, labels, roles = store
    pick = np.random.default_rng(0).choice(np.flatnonzero(roles == "member"), 30, replace=False)
    src = frames[pick].astype(np.float32)
    shifted = _shift(src, 3, 2)
    contrast = np.clip((src - src.mean()) * 1.25 + src.mean() + 12, 0, 255)
    syn = np.concatenate([shifted, contrast]).astype(np.uint8)
    res = _audit(store, syn, labels[np.r_[pick, pick]], ("pixels", "spectrum"))
    mask = res["copy_mask"]
    assert mask[:30].mean() >= 0.9 and mask[30:].mean() >= 0.9
    assert res["memorisation"]["by_space"]["pixels"] < 0.9  # pixels alone miss the shifted copies: why spectrum exists


def test_frames_of_unseen_patients_are_not_copies(store) -> None:  # type: ignore[no-untyped-def]
    frames, _, labels, roles = store
    hold = np.flatnonzero(roles == "nonmember")
    res = _audit(store, frames[hold], labels[hold], ("pixels", "spectrum"))
    assert res["memorisation"]["copy_rate"] <= 0.1


def test_embedding_is_trained_on_training_frames_only(store) -> None:  # type: ignore[no-untyped-def]
    frames, _, labels, roles = store
    member = roles == "member"
    real, syn = feature_spaces(("embedding",), frames, frames[:4], member=member, labels=labels, epochs=1)
    altered = frames.copy()
    altered[~member] = 255 - altered[~member]  # change every calibration and holdout frame
    real2, _ = feature_spaces(("embedding",), altered, frames[:4], member=member, labels=labels, epochs=1)
    np.testing.assert_allclose(real["embedding"][member], real2["embedding"][member], atol=1e-5)
    assert syn["embedding"].shape == (4, real["embedding"].shape[1])


def test_spectrum_ignores_gain_and_circular_shift() -> None:
    x = np.random.default_rng(1).integers(0, 200, (2, 32, 32)).astype(np.uint8)
    edited = np.roll(np.clip(x.astype(np.float32) * 1.2 + 5, 0, 255), 3, axis=2).astype(np.uint8)
    d_copy = np.linalg.norm(spectrum(x[:1]) - spectrum(edited[:1]))
    d_other = np.linalg.norm(spectrum(x[:1]) - spectrum(x[1:]))
    assert d_copy < 0.2 * d_other
