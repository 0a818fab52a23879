"""generate: the near-copy privacy filter drops every planted copy of a training frame, tops up
to N, and writes a synthetic frame store with provenance; PNG export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lusynth.data.framestore import open_store
from lusynth.errors import InputError
from lusynth.gan import generate as gen_mod
from lusynth.gan.generate import export_png, generate, latents
from lusynth.gan.params import GenerateParams
from lusynth.gan.synthetic import SyntheticSet
from lusynth.gan.train import train_gan
from lusynth.keys import GanKey
from lusynth.metrics.nearcopy import NearCopyPolicy
from tests.gan import make_phantom_store, tiny_params

LABELS = ("consolidation", "no_consolidation")


@pytest.fixture(scope="module")
def store(phantom_store: Path) -> Path:
    return phantom_store


@pytest.fixture(scope="module")
def gans(store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("gans")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")  # shared: no per-run DB setup
    try:
        for label in LABELS:
            train_gan(store, base / label, label=label, fraction=1.0, params=tiny_params(epochs=2, eval_every=1), progress=False)
    finally:
        mp.undo()
    return [base / label for label in LABELS]


def _split(store: Path, split: str, label: str) -> np.ndarray:
    s = open_store(store)
    frac = 1.0 if split == "train" else None
    return np.asarray(s.frames[s.indices(split=split, label=label, fraction=frac)])


def test_filter_drops_all_planted_copies(store: Path) -> None:
    train, holdout = _split(store, "train", LABELS[0]), _split(store, "holdout", LABELS[0])
    rng = np.random.default_rng(0)
    fresh = _split(store, "val", LABELS[0])  # real frames of other patients: not copies
    planted = train[rng.choice(len(train), 10, replace=False)].copy()
    planted[5:] = np.clip(planted[5:].astype(int) + rng.integers(-2, 3, planted[5:].shape), 0, 255).astype(np.uint8)  # near-copies
    candidates = np.concatenate([fresh, planted])
    filt = NearCopyPolicy(percentile=1.0).fit(train, holdout)
    mask, dcr = filt.mask(candidates)
    assert mask[len(fresh):].all(), f"planted copies kept: DCR {dcr[len(fresh):]} vs threshold {filt.threshold}"
    assert mask[: len(fresh)].mean() < 0.2  # fresh real frames mostly pass
    assert filt.threshold > 0


def test_generate_drops_planted_copies_tops_up_and_records_provenance(
    store: Path, gans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    train = {label: _split(store, "train", label) for label in LABELS}
    planted_at = {3, 4, 10}
    real_sample = gen_mod._sample

    def sample_with_copies(g, seed, indices, nz, device, batch_size):  # type: ignore[no-untyped-def]
        frames = real_sample(g, seed, indices, nz, device, batch_size)
        label = label_of[id(g)]
        for j, i in enumerate(indices):
            if i in planted_at:
                frames[j] = train[label][i]
        return frames

    label_of: dict[int, str] = {}
    real_load = gen_mod.load_generator

    def tracking_load(gan_dir, which="chosen"):  # type: ignore[no-untyped-def]
        g, cfg = real_load(gan_dir, which)
        label_of[id(g)] = Path(gan_dir).name  # the fixture names each GAN directory after its class
        return g, cfg

    monkeypatch.setattr(gen_mod, "_sample", sample_with_copies)
    monkeypatch.setattr(gen_mod, "load_generator", tracking_load)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")
    out = tmp_path / "synthetic"
    r = generate(gans, store, out, params=GenerateParams(n_per_class=12, seed=7))
    s = open_store(out)
    assert s.kind == "synthetic" and len(s) == 24 and set(s.manifest["split"]) == {"synthetic"}
    for label in LABELS:
        rows = s.manifest[s.manifest["label"] == label]
        assert len(rows) == 12
        assert r.per_class[label]["dropped_near_copies"] >= len(planted_at)
        assert r.per_class[label]["generated"] == 12 + r.per_class[label]["dropped_near_copies"]
        assert not planted_at & set(rows["latent_index"].astype(int))  # every planted copy is gone
        frames = np.asarray(s.frames[rows.index.to_numpy()])
        copies = (frames[:, None] == train[label][None]).all(axis=(2, 3)).any(axis=1)
        assert not copies.any()
        info = json.loads((gans[LABELS.index(label)] / "gan.json").read_text())
        assert set(rows["generator_run_id"]) == {info["mlflow_run_id"]} and set(rows["seed"].astype(int)) == {7}
        assert set(rows["checkpoint"]) == {info["chosen"]["checkpoint"]}
        assert (rows["source"] == "gan").all() and (rows["patient_id"] == "synthetic").all()
    assert s.header["privacy_filter"][LABELS[0]]["near_copy"]["percentile"] == 1.0
    # the unfiltered output (what the privacy audit reads): the first 12 latents of each class, planted copies included
    frames_u, labels_u, dropped_u = r.unfiltered()
    assert len(frames_u) == 24 and sorted(set(labels_u)) == sorted(LABELS)
    for label in LABELS:
        mine = labels_u == label
        assert mine.sum() == 12 and dropped_u[mine].sum() >= len(planted_at)
        planted = np.array([(f == train[label][i]).all() for f in frames_u[mine] for i in planted_at]).reshape(-1, len(planted_at))
        assert planted.any(axis=0).all()  # each planted copy is in the unfiltered sample
    # a frame is reproducible from its provenance alone
    from lusynth.gan.checkpoint import load_generator
    from lusynth.gan.step import sample_frames

    row = s.manifest.iloc[0]
    g, cfg = load_generator(gans[LABELS.index(row["label"])])
    again = sample_frames(g, latents(int(row["seed"]), [int(row["latent_index"])], cfg.nz))
    assert np.array_equal(again[0], s.frames[0])
    # PNG export
    n = export_png(out, tmp_path / "png")
    assert n == 24 and len(list((tmp_path / "png" / LABELS[0]).glob("*.png"))) == 12


def test_generate_rejects_a_different_frame_store(gans: list[Path], tmp_path: Path) -> None:
    other = make_phantom_store(tmp_path / "other", patients=6, clips=1, frames=2, seed=3)
    with pytest.raises(InputError, match="trained on frames"):
        generate(gans[:1], other, tmp_path / "out", params=GenerateParams(n_per_class=2))


def test_generate_returns_the_synthetic_set_it_wrote(gans: list[Path], store: Path, tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    r = generate(gans, store, out, params=GenerateParams(n_per_class=3), near_copy=NearCopyPolicy(percentile=2.0))
    again = SyntheticSet.load(out)
    assert r.keys == again.keys == (GanKey(LABELS[0], 1.0), GanKey(LABELS[1], 1.0))
    assert r.path == out and len(r.store) == r.n_frames == 6
    assert r.source_frames_digest == open_store(store).digest
    assert again.privacy_filter[LABELS[1]]["near_copy"] == {"percentile": 2.0, "features": "pixels", "reference": "pooled"}
    assert r.per_class == again.privacy_filter


def test_synthetic_set_load_refuses_a_real_store_and_a_plain_folder(store: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a synthetic frame store; pass the output of `lusynth generate`"):
        SyntheticSet.load(store)
    with pytest.raises(InputError, match="not a synthetic frame store"):
        SyntheticSet.load(tmp_path)


def test_synthetic_set_keys_of_a_store_written_elsewhere(tmp_path: Path) -> None:
    # a synthetic store of another writer records one fraction for the whole store
    from tests.classifier import write_synthetic_store

    frames = np.zeros((3, 8, 8), dtype=np.uint8)
    syn = SyntheticSet.load(write_synthetic_store(tmp_path / "s", frames, LABELS[0], fraction=0.5))
    assert syn.keys == (GanKey(LABELS[0], 0.5),) and syn.privacy_filter == {} and syn.source_frames_digest is None


def test_a_generator_that_only_copies_is_withheld_and_the_other_class_is_released(
    store: Path, gans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Class 0's generator returns its training frames: after max_rounds nothing has passed the filter,
    so generate withholds the class (no frame released, its first round kept for the audit, the reason
    in the header and the summary) instead of stopping, and still releases class 1."""
    copier = LABELS[0]
    train = _split(store, "train", copier)
    real_sample, real_load = gen_mod._sample, gen_mod.load_generator
    label_of: dict[int, str] = {}

    def tracking_load(gan_dir, which="chosen"):  # type: ignore[no-untyped-def]
        g, cfg = real_load(gan_dir, which)
        label_of[id(g)] = Path(gan_dir).name
        return g, cfg

    def sample(g, seed, indices, nz, device, batch_size):  # type: ignore[no-untyped-def]
        if label_of[id(g)] == copier:
            return train[np.asarray(indices) % len(train)]
        return real_sample(g, seed, indices, nz, device, batch_size)

    monkeypatch.setattr(gen_mod, "_sample", sample)
    monkeypatch.setattr(gen_mod, "load_generator", tracking_load)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")
    out = tmp_path / "synthetic"
    r = generate(gans, store, out, params=GenerateParams(n_per_class=8, seed=3, max_rounds=3))
    assert set(r.withheld) == {copier} and "only 0 of 8 frames passed the near-copy filter after 24 latents" in r.withheld[copier]
    assert [k.label for k in r.keys] == sorted(LABELS)  # the withheld class keeps its key: its classifiers find and skip it
    m = r.store.manifest
    assert (m.loc[m["label"] == copier, "split"] == "withheld").all() and (m["label"] == copier).sum() == 8  # the first round
    assert (m.loc[m["label"] == LABELS[1], "split"] == "synthetic").sum() == 8
    assert len(r.store.indices(split="synthetic", label=copier)) == 0
    frames_u, labels_u, dropped_u = r.unfiltered()  # what the audit reads: the copier's first round, marked as not released
    mine = labels_u == copier
    assert mine.sum() == 8 and dropped_u[mine].all()
    assert (frames_u[mine][:, None] == train[None]).all(axis=(2, 3)).any(axis=1).all()
    assert "WITHHELD: only 0 of 8" in r.summary() and r.per_class[copier]["kept"] == 0
    assert export_png(out, tmp_path / "png") == 8 and not (tmp_path / "png" / copier).exists()
    # the audit stage reads the withheld class's first round: every frame a copy, removed from the release
    from lusynth.privacy.params import AuditParams
    from lusynth.privacy.run import audit

    a = audit(store, out, tmp_path / "audit", params=AuditParams(n_permutations=99, n_bootstrap=99, embedding_epochs=1))
    f = a.report["filter"]
    assert f["per_class"][copier]["kept"] == 0 and f["copies_the_filter_kept"] == 0
    assert f["copies_the_filter_removed"] >= 8 and a.decision == "fail"
