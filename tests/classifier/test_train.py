"""train_classifier writes a loadable classifier; the random search and MLflow run are recorded."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lusynth.classifier.params import ClassifierParams
from lusynth.classifier.train import load_classifier, search_points, train_classifier
from lusynth.data.framestore import open_store
from lusynth.keys import Cell
from lusynth.runtime import RunContext
from tests.classifier import write_real_store


def test_search_points_start_at_the_configured_point_and_draw_from_the_space() -> None:
    p = ClassifierParams(trials=12)
    pts = search_points(p, seed=0)
    assert pts[0] == (p.lr, p.width, p.dropout) and len(pts) == 12
    assert all(lr in p.search_lr and w in p.search_width and d in p.search_dropout for lr, w, d in pts[1:])
    assert pts == search_points(p, seed=0) != search_points(p, seed=1)


def test_foreach_rmsprop_updates_bit_for_bit_like_the_loop() -> None:
    from lusynth.classifier.train import make_optimizer
    from lusynth.models.classifier import ClassifierConfig, build_classifier

    torch.manual_seed(0)
    models = [build_classifier(ClassifierConfig(image_size=64, width=3)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    p = ClassifierParams()
    opts = [make_optimizer(models[0], lr=1e-3, params=p),
            torch.optim.RMSprop(models[1].parameters(), lr=1e-3, alpha=p.rmsprop_alpha, eps=p.rmsprop_eps, foreach=False)]
    assert opts[0].defaults["foreach"]
    for step in range(3):
        for m, opt in zip(models, opts, strict=True):
            gen = torch.Generator().manual_seed(step)
            for q in m.parameters():
                q.grad = torch.randn(q.shape, generator=gen)
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_trains_bit_identical_weights(tmp_path: Path, precision: str) -> None:
    """Determinism with the CPU kernels (FastBatchNorm2d, FastDropout, foreach RMSprop) in either
    precision: one seed, one set of weights; another seed, other weights."""
    real = write_real_store(tmp_path / "real")
    params = ClassifierParams(steps=4, eval_every=2, dropout=0.35, precision=precision)  # 0.35: the 31-bit dropout route

    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        train_classifier(real, tmp_path / name, arm="real+aug", fraction=1.0, seed=seed, params=params, progress=False,
                         ctx=RunContext(track=False))
        return torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]

    a, b, c = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_params_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="classifier.blur_kernels"):
        ClassifierParams(blur_kernels=(2,))


def test_train_writes_model_metadata_and_history(tmp_path: Path) -> None:
    real = write_real_store(tmp_path / "real")
    params = ClassifierParams(trials=2, steps=4, eval_every=2, search_lr=(1e-3,))
    r = train_classifier(real, tmp_path / "clf", arm="real", fraction=0.5, seed=0, params=params, progress=False)
    meta = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    hist = json.loads((tmp_path / "clf" / "history.json").read_text())
    assert meta["arm"] == "real" and meta["fraction"] == 0.5 and len(meta["trials"]) == 2
    assert meta["mlflow_run_id"] == r.run_id and r.run_id
    assert (tmp_path / "mlruns.db").is_file()  # the tracking store sits beside the output directory
    assert meta["data"]["real_digest"] == open_store(real).digest
    assert 0 <= meta["threshold"] <= 1 and all([e["step"] for e in t["evaluations"]] == [2, 4] for t in hist["trials"])
    assert meta["augmented"] is False and meta["ratio"] == 0.0 and meta["gan_seed"] == 0 and meta["fold"] == 0
    clf = load_classifier(tmp_path / "clf")
    store = open_store(real)
    p = clf.predict_proba(np.asarray(store.frames[:10]))
    assert p.shape == (10,) and ((p >= 0) & (p <= 1)).all()
    assert clf.embed(np.asarray(store.frames[:4])).shape == (4, clf.config.embed_dim)
    assert clf.threshold == pytest.approx(meta["threshold"])


def test_every_arm_gets_the_same_optimiser_steps_and_only_real_aug_augments(tmp_path: Path) -> None:
    # equal compute: real+synthetic holds twice the frames of real, yet both take `steps`
    # optimiser steps; a budget in epochs would give it twice the updates
    from tests.classifier import write_synthetic_store

    real = write_real_store(tmp_path / "real")
    store = open_store(real)
    syn = [write_synthetic_store(tmp_path / c, np.asarray(store.frames[store.indices(split="train", label=c, fraction=0.5)]), c,
                                 fraction=0.5) for c in store.classes]
    params = ClassifierParams(steps=5, eval_every=5, batch_size=4)
    runs = {arm: train_classifier(real, tmp_path / "clf" / arm, arm=arm, fraction=0.5, seed=0, ratio=1.0, gan_seed=1, synthetic_dirs=syn,
                                  params=params, progress=False, ctx=RunContext(track=False))
            for arm in ("real", "real+aug", "real+synthetic")}
    n_train = {a: r.meta["data"]["n_train"] for a, r in runs.items()}
    assert n_train["real+synthetic"] == 2 * n_train["real"]
    assert {r.meta["trials"][0]["steps_run"] for r in runs.values()} == {5}
    assert [r.meta["augmented"] for r in runs.values()] == [False, True, False]
    assert runs["real+synthetic"].cell == Cell("real+synthetic", 0.5, 0, ratio=1.0, gan_seed=1)
    assert runs["real"].cell == Cell("real", 0.5, 0)  # no ratio or GAN seed on an arm without synthetic frames


def test_a_fold_the_store_does_not_hold_is_refused_before_any_training(tmp_path: Path) -> None:
    # a single-split store holds fold 0 only: fold 1 must not silently train on fold 0's split
    from lusynth.errors import InputError
    from lusynth.stages import run_stage

    real = write_real_store(tmp_path / "real")
    with pytest.raises(InputError, match=r"fold 1 is not in .*which holds 1 outer split\(s\).*use --fold 0..0"):
        run_stage("train_classifier", tmp_path / "clf", inputs={"frames": str(real)}, key=Cell("real", 1.0, 0, fold=1), profile="tiny",
                  ctx=RunContext(track=False, cache=False))
    assert not (tmp_path / "clf").exists()
