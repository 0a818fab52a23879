"""train-gan: a real short run improves fidelity, outputs follow the contract, kill/resume is
exact, non-finite losses stop the run with the last good checkpoint kept."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lusynth.errors import InputError
from lusynth.gan import step as step_mod
from lusynth.gan.checkpoint import load_checkpoint, load_discriminator, load_generator
from lusynth.gan.step import NonFiniteLossError
from lusynth.gan.train import GanRun, GanTrainer, train_gan
from lusynth.keys import GanKey
from lusynth.metrics.nearcopy import NearCopyPolicy
from tests.gan import shared_store, tiny_params

LABEL = "consolidation"


@pytest.fixture(scope="module")
def store(phantom_store: Path) -> Path:
    return phantom_store


@pytest.fixture(scope="module")
def fidelity_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 patients, so each class has 3 validation patients: against the shared store's single
    validation patient per class, MMD measures closeness to one patient, not to the class."""
    return shared_store(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _shared_tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One MLflow SQLite store for the module: creating one per run costs ~5 s of migrations."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")


def _weights(out: Path) -> dict[str, torch.Tensor]:
    s = load_checkpoint(out / "checkpoints" / "last.pt")
    return {**{f"g.{k}": v for k, v in s["generator"].items()}, **{f"d.{k}": v for k, v in s["discriminator"].items()},
            **{f"ema.{k}": v for k, v in (s["generator_ema"] or {}).items()}}


@pytest.mark.slow
def test_short_training_improves_fidelity_and_writes_the_contract(
    fidelity_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fidelity_store
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # no URI: the local store under the output directory
    out = tmp_path / "gan"
    params = tiny_params(ngf=16, ndf=16, nz=100, epochs=40, eval_every=10, n_eval=32, embedding_epochs=3,
                         lr_d=2e-4, diffaugment="", ema_decay=0.0)
    r = train_gan(store, out, label=LABEL, fraction=1.0, params=params, progress=False)
    first = r.history[0]
    chosen = next(h for h in r.history if h["step"] == r.chosen["step"])
    assert first["epoch"] == 0 and r.history[-1]["epoch"] == 40 and chosen["epoch"] >= 1
    # the chosen generator is measurably closer to the held-out validation frames than the untrained one
    assert chosen["mmd_pixels"] < 0.9 * first["mmd_pixels"]
    assert chosen["mmd_embed"] < first["mmd_embed"]
    # 1-NN must not get worse (on clip-correlated phantom frames it saturates at 1.0 even for real
    # train-vs-validation frames, so a strict drop cannot be asserted on this data)
    assert chosen["nn1_pixels"] <= first["nn1_pixels"] and chosen["nn1_embed"] <= first["nn1_embed"]
    # output contract
    summary = json.loads((out / "gan.json").read_text())
    assert summary["label"] == LABEL and summary["fraction"] == 1.0 and summary["mlflow_run_id"] == r.run_id
    assert summary["selection"]["rule"] == "nn1_embed" and summary["chosen"]["checkpoint"].startswith("checkpoints/step_")
    history = json.loads((out / "fidelity_history.json").read_text())
    assert [h["step"] for h in history] == [h["step"] for h in r.history]
    for key in ("mmd_pixels", "nn1_pixels", "mmd_embed", "nn1_embed", "memorisation_rate", "sharpness_ratio"):
        assert all(key in h for h in history)
    # the untrained G's eval-mode frames are nearly flat (almost no 1-pixel detail); training brings it towards real frames'
    assert first["sharpness_ratio"] < 0.5 and abs(chosen["sharpness_ratio"] - 1) < abs(first["sharpness_ratio"] - 1)
    assert (out / summary["chosen"]["checkpoint"]).is_file() and (out / "embedding.pt").is_file()
    assert len(list((out / "samples").glob("step_*.png"))) == len(history)
    g, cfg = load_generator(out)
    d, _ = load_discriminator(out)
    assert not g.training and not d.training and cfg.image_size == 64
    with torch.no_grad():
        assert d(g(torch.randn(2, cfg.nz, 1, 1))).shape == (2,)
    # MLflow: params, per-step losses, fidelity, the chosen checkpoint
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    run = client.get_run(r.run_id)
    assert run.info.status == "FINISHED" and run.data.params["lr_g"] == str(params.lr_g)
    assert len(client.get_metric_history(r.run_id, "loss_d")) == r.steps
    assert len(client.get_metric_history(r.run_id, "nn1_embed")) == len(history)
    arts = {a.path for a in client.list_artifacts(r.run_id, "chosen")}
    assert arts == {"chosen/" + Path(summary["chosen"]["checkpoint"]).name}


def test_train_gan_returns_the_run_it_saved(store: Path, tmp_path: Path) -> None:
    r = train_gan(store, tmp_path / "gan", label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1), progress=False)
    assert isinstance(r, GanRun) and r.key == GanKey(LABEL, 1.0) and r.train_seconds and r.train_seconds > 0
    assert GanRun.load(tmp_path / "gan") == replace(r, train_seconds=None)


def test_max_steps_caps_the_epochs_and_keeps_the_number_of_evaluations(store: Path, tmp_path: Path) -> None:
    """``max_steps`` trains whole epochs up to the cap; the evaluations are spread over the shorter run
    as ``epochs / eval_every`` were over the long one (plus the untrained baseline)."""
    free = train_gan(store, tmp_path / "free", label=LABEL, fraction=1.0,
                     params=tiny_params(epochs=1, eval_every=1, max_steps=0), progress=False)
    per_epoch = free.steps
    assert per_epoch >= 2, "the shared store must give this test more than one batch per epoch"
    # 20 epochs evaluated every 10 (2 evaluations), capped at 3 epochs' worth of steps
    r = train_gan(store, tmp_path / "capped", label=LABEL, fraction=1.0,
                  params=tiny_params(epochs=20, eval_every=10, max_steps=3 * per_epoch - 1), progress=False)
    assert r.steps == 3 * per_epoch and r.epochs == 3
    assert [h["epoch"] for h in r.history] == [0, 2, 3]  # eval_every 10 x 3/20 -> every 2 epochs, and the last
    # no cap where the epochs already need fewer steps
    r = train_gan(store, tmp_path / "uncapped", label=LABEL, fraction=1.0,
                  params=tiny_params(epochs=2, eval_every=1, max_steps=100 * per_epoch), progress=False)
    assert r.steps == 2 * per_epoch and r.epochs == 2


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_weights(store: Path, tmp_path: Path, precision: str) -> None:
    p = tiny_params(epochs=1, eval_every=1, precision=precision)
    train_gan(store, tmp_path / "a", label=LABEL, fraction=1.0, params=p, progress=False)
    train_gan(store, tmp_path / "b", label=LABEL, fraction=1.0, params=p, progress=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


_KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    import lusynth.gan.step as S
    import lusynth.gan.train as T
    from tests.gan import tiny_params
    store, out, kill_at, overrides = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    calls = [0]
    bce = S._bce
    def killing_bce(logits, target):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like an OOM kill or a pre-empted node
        return bce(logits, target)
    S._bce = killing_bce
    T.train_gan(store, out, label="consolidation", fraction=1.0, params=tiny_params(**overrides), progress=False)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_and_resumed_run_ends_with_identical_weights(store: Path, tmp_path: Path, precision: str) -> None:
    overrides = {"epochs": 4, "eval_every": 2, "ema_decay": 0.9, "instance_noise": 0.2, "precision": precision}
    ref = tmp_path / "uninterrupted"
    train_gan(store, ref, label=LABEL, fraction=1.0, params=tiny_params(**overrides), progress=False)
    steps = json.loads((ref / "gan.json").read_text())["steps"]
    kill_at = random.SystemRandom().randint(4, 3 * steps - 1)  # 3 BCE calls per step; a random one of them
    out = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(store), str(out), str(kill_at), json.dumps(overrides)],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, f"kill_at={kill_at}: {proc.stderr[-2000:]}"
    assert not (out / "gan.json").exists()
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(**overrides), resume=True, progress=False)
    wa, wb = _weights(ref), _weights(out)
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"kill at BCE call {kill_at}/{3 * steps}: {differ[:5]} differ"
    ha = json.loads((ref / "fidelity_history.json").read_text())
    hb = json.loads((out / "fidelity_history.json").read_text())
    assert ha == hb, f"kill at BCE call {kill_at}"
    assert json.loads((ref / "chosen.json").read_text()) == json.loads((out / "chosen.json").read_text())


def test_resume_refuses_changed_parameters(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1), progress=False)
    with pytest.raises(InputError, match="lr_g"):
        train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1, lr_g=1e-3),
                  resume=True, progress=False)


def test_resume_refuses_another_precision(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1, precision="bf16"), progress=False)
    with pytest.raises(InputError, match="precision"):
        train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1, precision="fp32"),
                  resume=True, progress=False)


def test_bf16_training_keeps_float32_weights_optimiser_state_and_batchnorm_statistics(store: Path, tmp_path: Path) -> None:
    """The numerics policy: bf16 compute only; what persists from step to step stays float32."""
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1, precision="bf16"), progress=False)
    s = load_checkpoint(out / "checkpoints" / "last.pt")
    assert s["precision"] == "bf16"
    floats = [v for net in ("generator", "discriminator", "generator_ema") for k, v in s[net].items() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)  # weights, BN running mean/var, EMA
    moments = [t for opt in ("opt_g", "opt_d") for st in s[opt]["state"].values() for t in st.values() if t.is_floating_point()]
    assert moments and all(t.dtype == torch.float32 for t in moments)


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tiny_params(epochs=3, eval_every=1)
    n_train = 0
    calls = [0]
    real_bce = step_mod._bce

    def nan_after(logits: torch.Tensor, target: float) -> torch.Tensor:
        calls[0] += 1
        loss = real_bce(logits, target)
        return loss * float("nan") if calls[0] > 3 * bad_step - 3 else loss

    from lusynth.data.framestore import open_store

    n_train = len(open_store(store).indices(split="train", label=LABEL, fraction=1.0))
    steps_per_epoch = sum(1 for i in range(0, n_train, 8) if n_train - i >= 2)
    bad_step = steps_per_epoch + 2  # inside the second epoch
    monkeypatch.setattr(step_mod, "_bce", nan_after)
    out = tmp_path / "gan"
    with pytest.raises(NonFiniteLossError, match=f"step {bad_step} \\(epoch 2\\)") as err:
        train_gan(store, out, label=LABEL, fraction=1.0, params=params, progress=False)
    assert "last.pt" in str(err.value)
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert int(state["epoch"]) == 1 and int(state["step"]) == steps_per_epoch
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    assert not (out / "gan.json").exists() and not (out / "chosen.json").exists()


def test_selection_records_the_near_copy_policy_it_applied(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=1, eval_every=1),
              near_copy=NearCopyPolicy(percentile=5.0), progress=False)
    summary = json.loads((out / "gan.json").read_text())
    assert summary["selection"]["near_copy"] == {"percentile": 5.0, "features": "pixels", "reference": "pooled"}
    assert "memorisation_percentile" not in summary["params"]


def test_an_mmd_selection_rule_chooses_the_lowest_mmd_eligible_checkpoint(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=3, eval_every=1, selection="mmd_pixels"),
              progress=False)
    summary = json.loads((out / "gan.json").read_text())
    history = json.loads((out / "fidelity_history.json").read_text())
    eligible = [h for h in history if h["epoch"] >= 1 and h["memorisation_rate"] <= summary["selection"]["max_memorisation_rate"]]
    assert summary["selection"]["rule"] == "mmd_pixels" and len(eligible) >= 2
    best = min(eligible, key=lambda h: (h["mmd_pixels"], -h["step"]))
    assert summary["chosen"]["step"] == best["step"] and summary["selection"]["reason"].startswith("mmd_pixels = ")


@pytest.mark.parametrize(("seconds", "expected"), [(0.0, [1, 2, 3, 4, 5]), (1e9, [2, 4, 5])], ids=["every-epoch", "evaluations-and-end"])
def test_resumable_state_is_written_at_evaluations_the_end_and_every_checkpoint_seconds(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float, expected: list[int]
) -> None:
    """``checkpoint_seconds``: 0 writes last.pt (and pushes the mirror) after every epoch; a long
    interval only after evaluations (every 2nd epoch here) and after the last epoch. A kill
    anywhere still resumes bit-identically (test_killed_and_resumed_run_ends_with_identical_weights
    runs with the default interval, so its kill often lands between writes)."""
    written: list[int] = []
    real_save = GanTrainer.save_checkpoint

    def record(self: GanTrainer) -> None:
        written.append(self.epoch)
        real_save(self)

    monkeypatch.setattr(GanTrainer, "save_checkpoint", record)
    out = tmp_path / "gan"
    train_gan(store, out, label=LABEL, fraction=1.0, params=tiny_params(epochs=5, eval_every=2, checkpoint_seconds=seconds), progress=False)
    assert written == expected
    assert int(load_checkpoint(out / "checkpoints" / "last.pt")["epoch"]) == 5


def test_a_gan_or_generate_task_does_not_import_sklearn() -> None:
    """Every KFP task is a fresh process: sklearn.metrics (~1 s of import) is for the tasks that
    compute an AUC (audit, classifier, evaluate), not for train-gan and generate, whose near-copy
    rule shares a module with the membership-inference AUC."""
    code = "import sys, lusynth.gan.train, lusynth.gan.generate; print(sorted(m for m in sys.modules if m.startswith('sklearn'))[:3])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"imported: {out}"
