"""The generator family is part of the GAN stage's task key (``GanKey.generator``, ``train-gan --generator``, issue 17): a FastGAN-lite
run trains FastGAN's networks with its own step, records the family in gan.json and every
checkpoint, and everything downstream that loads a GAN (generate, the privacy audit's
discriminator attack, the ONNX export, the model card) works for it; old checkpoints without the
family are DCGANs; a change of family is not resumable; an unknown family is one clear line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from lusynth.cli import main
from lusynth.errors import InputError
from lusynth.gan.checkpoint import load_checkpoint, load_discriminator, load_generator, save_checkpoint
from lusynth.gan.families import config_from_dict, empty_generator
from lusynth.gan.generate import generate
from lusynth.gan.params import GenerateParams
from lusynth.gan.run import GanRun
from lusynth.gan.step import sample_frames
from lusynth.gan.train import train_gan
from lusynth.models import fastgan
from lusynth.models.dcgan import Generator, flops_per_image
from tests.gan import tiny_params

LABELS = ("consolidation", "no_consolidation")
FAST = {"epochs": 2, "eval_every": 1}


@pytest.fixture(autouse=True)
def _shared_tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One MLflow SQLite store for the module (a new one costs seconds of migrations)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")


@pytest.fixture(scope="module")
def fast_gans(phantom_store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One tiny FastGAN-lite per class (2 epochs, width 4, nz 16), the second at half size (``fastgan_downscale`` 2)."""
    base = tmp_path_factory.mktemp("fastgans")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'gan-tests-mlruns.db'}")
    try:
        for label, downscale in zip(LABELS, (1, 2), strict=True):
            train_gan(phantom_store, base / label, label=label, fraction=1.0, generator="fastgan", progress=False,
                      params=tiny_params(**FAST, fastgan_downscale=downscale))
    finally:
        mp.undo()
    return [base / label for label in LABELS]


def test_a_fastgan_run_records_its_family_and_ships_fastgan_networks(fast_gans: list[Path]) -> None:
    gan = fast_gans[0]
    run = GanRun.load(gan)
    assert run.family == "fastgan" and run.params["generator"] == "fastgan" and run.key.generator == "fastgan"
    assert run.config == {"family": "fastgan", "image_size": 64, "nz": 16, "ngf": 4, "ndf": 4, "nc": 1, "recon_weight": 1.0, "downscale": 1}
    half = GanRun.load(fast_gans[1])
    assert half.config["downscale"] == 2 and half.params["fastgan_downscale"] == 2
    assert half.flops_per_image["train_step"] < 0.8 * run.flops_per_image["train_step"]
    g_half, _ = load_generator(fast_gans[1])
    assert isinstance(g_half, fastgan.FastGANGenerator) and g_half.resolutions[-1] == 32
    with torch.no_grad():
        assert g_half(torch.randn(2, 16, 1, 1)).shape == (2, 1, 64, 64)
    assert json.loads((gan / "gan.json").read_text())["config"]["family"] == "fastgan"
    # every checkpoint (the resumable state and each evaluated one) says which networks its weights are
    for ck in (gan / "checkpoints").glob("*.pt"):
        assert load_checkpoint(ck)["config"]["family"] == "fastgan", ck.name
    # FastGAN's counts, not the DCGAN's (its D includes the reconstruction decoders)
    cfg = fastgan.FastGANConfig(image_size=64, nz=16, ngf=4, ndf=4)
    assert run.flops_per_image == fastgan.flops_per_image(cfg)
    assert run.params_d == sum(p.numel() for p in fastgan.discriminator(cfg).parameters())
    g, gcfg = load_generator(gan)
    d, _ = load_discriminator(gan)
    assert isinstance(g, fastgan.FastGANGenerator) and isinstance(d, fastgan.FastGANDiscriminator)
    assert not g.training and not d.training and gcfg.nz == 16
    with torch.no_grad():
        assert d(g(torch.randn(3, 16, 1, 1))).shape == (3, 1)


def test_loading_folds_spectral_norm_without_changing_a_frame(fast_gans: list[Path]) -> None:
    """The loaded G has plain weights (an ONNX-friendly graph) and gives exactly the frames of the
    spectrally normalised G in eval mode, which is what training evaluated and selected."""
    g, cfg = load_generator(fast_gans[0])
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    state = load_checkpoint(fast_gans[0] / GanRun.load(fast_gans[0]).chosen["checkpoint"])
    ref = empty_generator(config_from_dict(state["config"]))
    ref.load_state_dict(state["generator_ema"])
    assert any(parametrize.is_parametrized(m) for m in ref.modules())
    z = torch.randn(12, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(3))
    assert np.array_equal(sample_frames(g, z), sample_frames(ref.eval(), z))
    assert np.array_equal(sample_frames(g, z), sample_frames(g, z.view(12, cfg.nz)))  # (N, nz) latents too


def test_generate_audit_export_and_card_work_for_fastgan(phantom_store: Path, fast_gans: list[Path], tmp_path: Path) -> None:
    from lusynth.export.onnx_export import export_generator, ort_session, read_metadata
    from lusynth.params import stage_params
    from lusynth.privacy.run import Audit, audit
    from lusynth.registry.cards import generator_model_card
    from lusynth.registry.gate import GateDecision

    syn = generate(fast_gans, phantom_store, tmp_path / "syn", params=GenerateParams(n_per_class=8, batch_size=8))
    assert {k.generator for k in syn.keys} == {"fastgan"}  # the set says which family made it (classifier cells match on it)
    assert syn.n_frames == 16 and {c["kept"] for c in syn.per_class.values()} == {8}
    # the privacy audit's discriminator attack scores the real frames with FastGAN's D
    audit(phantom_store, tmp_path / "syn", tmp_path / "audit", params=stage_params("audit", "tiny", {}), gan_dirs=fast_gans)
    a = Audit.load(tmp_path / "audit")
    assert set(a.report["discriminator_attack"]) == set(LABELS)
    assert 0 <= a.report["membership"]["discriminator"]["auc"] <= 1
    # ONNX: the parity check passed, the metadata names the family, the graph gives sample_frames' frames
    # (the half-size G too: its bilinear upsampling is an ONNX Resize)
    for i, gan in enumerate(fast_gans):
        res = export_generator(gan, tmp_path / f"g{i}.onnx")
        meta = read_metadata(res.path)
        assert meta["lusynth.generator_family"] == "fastgan" and "FastGAN-lite" in meta["lusynth.architecture"]
        assert ("work at 32x32 and G's frames are bilinearly upsampled to 64x64" in meta["lusynth.architecture"]) == (i == 1)
        g, cfg = load_generator(gan)
        z = torch.randn(5, cfg.nz, generator=torch.Generator().manual_seed(1))
        got = ort_session(res.path).run(None, {"z": z.numpy()})[0]
        assert got.shape == (5, 64, 64) and np.abs(got.astype(int) - sample_frames(g, z.view(5, cfg.nz, 1, 1)).astype(int)).max() <= 1
    card = generator_model_card(meta, None, gate=GateDecision("challenger", "no audit"), onnx_sha256=res.sha256, pipeline_run_id=None)
    assert "FastGAN-lite" in card and "DCGAN" not in card


def test_a_dcgan_run_records_its_family_and_an_old_checkpoint_without_it_is_a_dcgan(phantom_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "gan"
    run = train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, params=tiny_params(epochs=1, eval_every=1), progress=False)
    assert run.family == "dcgan" and run.config["family"] == "dcgan" and run.params["generator"] == "dcgan" and run.key.generator == "dcgan"
    assert run.flops_per_image == flops_per_image(config_from_dict(run.config))  # type: ignore[arg-type]
    # what train-gan wrote before the FastGAN family: no family in the config, no new fields in the params
    new_fields = ("generator", "fastgan_width", "fastgan_recon_weight", "fastgan_lr", "fastgan_downscale")
    for ck in (out / "checkpoints").glob("*.pt"):
        state = load_checkpoint(ck)
        del state["config"]["family"]
        if "params" in state:
            state["params"] = {k: v for k, v in state["params"].items() if k not in new_fields}
        save_checkpoint(ck, state)
    doc = json.loads((out / "gan.json").read_text())
    del doc["config"]["family"], doc["generator"]
    (out / "gan.json").write_text(json.dumps(doc))
    assert GanRun.load(out).family == "dcgan" and GanRun.load(out).key.generator == "dcgan"
    g, cfg = load_generator(out)
    d, _ = load_discriminator(out)
    assert isinstance(g, Generator) and cfg.ngf == 8
    with torch.no_grad():
        assert d(g(torch.randn(2, cfg.nz, 1, 1))).shape == (2,)
    # and it resumes with today's defaults (generator=dcgan is what it did), but not as another family
    train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, params=tiny_params(epochs=1, eval_every=1), resume=True, progress=False)
    with pytest.raises(InputError, match=r"params differ: generator='dcgan'->'fastgan'"):
        train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, generator="fastgan", params=tiny_params(epochs=1, eval_every=1),
                  resume=True, progress=False)


def test_an_unknown_generator_is_one_clear_line(phantom_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train-gan", "-f", str(phantom_store), "--label", LABELS[0], "--fraction", "1.0", "-o", str(tmp_path / "g"),
               "--generator", "nope", "--profile", "tiny", "--no-track", "-q"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and not (tmp_path / "g").exists()
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: GAN 'consolidation' generator: 'nope' is not a generator family; choose one of dcgan, fastgan"]


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import lusynth.gan.train as T
    import lusynth.models.fastgan as F
    from tests.gan import tiny_params
    store, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = [0]
    recon = F._recon_loss
    def killing_recon(*args):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like an OOM kill or a pre-empted node
        return recon(*args)
    F._recon_loss = killing_recon
    T.train_gan(store, out, label="consolidation", fraction=1.0, generator="fastgan", params=tiny_params(epochs=4, eval_every=2,
                ema_decay=0.9, checkpoint_seconds=0, precision=sys.argv[4]), progress=False)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32"])  # bf16 passed too, at 3x the time (~2 min) on 2 busy cores; fast_gans trains in auto
def test_a_killed_and_resumed_fastgan_ends_with_identical_weights(phantom_store: Path, tmp_path: Path, precision: str) -> None:
    # the resumable state is written after every epoch: a kill after the first one always resumes
    params = tiny_params(epochs=4, eval_every=2, ema_decay=0.9, checkpoint_seconds=0, precision=precision)
    ref = train_gan(phantom_store, tmp_path / "ref", label=LABELS[0], fraction=1.0, generator="fastgan", params=params, progress=False)
    per_epoch = ref.steps // 4
    kill_at = random.SystemRandom().randint(per_epoch + 1, ref.steps)  # one reconstruction loss per step: a random step after epoch 1
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(phantom_store), str(out), str(kill_at), precision],
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"kill_at={kill_at}: {proc.stderr[-2000:]}"
    run = train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, generator="fastgan", params=params, resume=True, progress=False)
    assert run.resumed and run.steps == ref.steps
    a, b = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt"), load_checkpoint(out / "checkpoints" / "last.pt")
    for part in ("generator", "discriminator", "generator_ema"):
        differ = [k for k in a[part] if not torch.equal(a[part][k], b[part][k])]
        assert not differ, f"kill at step {kill_at}: {part} {differ[:5]} differ"
    assert [h["step"] for h in run.history] == [h["step"] for h in ref.history]


def test_fastgan_trains_in_the_dcgans_cpu_layout_and_a_downscale_too_big_for_the_frames_is_one_clear_error(
        phantom_store: Path, tmp_path: Path) -> None:
    from lusynth.gan.families import build_networks, network_config
    from lusynth.models.fastcpu import ChannelsLastAdam

    params = tiny_params()
    g, d, opt_g, opt_d, mf = build_networks(network_config(params, 64, "fastgan"), params, "cpu")
    assert mf == torch.channels_last and g.to_img.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    assert isinstance(opt_g, ChannelsLastAdam) and opt_g.defaults["fused"] and opt_d.defaults["lr"] == params.fastgan_lr
    plain = tiny_params(fast_cpu=False, channels_last=False)
    *_, opt_plain, mf_plain = build_networks(network_config(plain, 64, "fastgan"), plain, "cpu")
    assert mf_plain == torch.contiguous_format and type(opt_plain) is torch.optim.Adam
    # 64x64 frames / 4 = 16x16, too small for FastGAN's D: one line naming the store and the parameter, nothing written
    with pytest.raises(InputError, match=r"fastgan_downscale=4: 64x64 frames would leave FastGAN-lite's G and D 16x16") as err:
        train_gan(phantom_store, tmp_path / "g", label=LABELS[0], fraction=1.0, generator="fastgan", progress=False,
                  params=tiny_params(fastgan_downscale=4))
    assert str(err.value).startswith(f"{phantom_store}: ") and "\n" not in str(err.value) and not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="fastgan_downscale=3: choose one of 1, 2, 4"):
        tiny_params(fastgan_downscale=3)


def test_fastgan_step_share_scales_only_fastgans_schedule(phantom_store: Path, tmp_path: Path) -> None:
    """gan.fastgan_step_share: FastGAN-lite trains that share of the epochs and of the step cap (a
    comparison at equal CPU); the DCGAN's schedule ignores it; a share <= 0 is one clear error."""
    runs = {}
    for family, share in (("fastgan", 1.0), ("fastgan", 0.5), ("dcgan", 0.5)):
        out = tmp_path / f"{family}-{share}"
        runs[(family, share)] = train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, generator=family, progress=False,
                                          params=tiny_params(epochs=4, eval_every=2, fastgan_step_share=share))
    full, half, dcgan = runs[("fastgan", 1.0)], runs[("fastgan", 0.5)], runs[("dcgan", 0.5)]
    assert (full.epochs, half.epochs, dcgan.epochs) == (4, 2, 4)
    assert half.steps == full.steps // 2 and dcgan.steps == full.steps
    # evaluated about as often: at epoch 0, every (scaled) eval_every epochs and at the end
    assert [h["epoch"] for h in half.history] == [0, 1, 2] and [h["epoch"] for h in full.history] == [0, 2, 4]
    with pytest.raises(ValueError, match="fastgan_step_share=0.0: must be > 0"):
        tiny_params(fastgan_step_share=0.0)


def test_one_familys_knobs_leave_the_other_familys_gans_cached_and_out_of_their_records(
        phantom_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GAN's stage-cache key and its record cover only what its family reads: a sweep of
    ``gan.fastgan_step_share`` retrains the FastGANs and restores the DCGANs (and a DCGAN width change
    the reverse), a DCGAN's gan.json and MLflow params carry no ``fastgan_*`` field, and a DCGAN
    checkpoint resumes under another FastGAN setting but not under another DCGAN one."""
    from lusynth.gan.params import FAMILY_ONLY
    from lusynth.runtime import RunContext
    from lusynth.stages import run_stage

    monkeypatch.setenv("LUSYNTH_STAGE_CACHE", str(tmp_path / "cache"))
    base = {"epochs": 1, "eval_every": 1, "nz": 16}

    def train(family: str, run: str, resume: bool = False, **gan: object) -> bool:
        out = run_stage("train_gan", tmp_path / run / family, inputs={"frames": str(phantom_store)}, profile="tiny",
                        key={"label": LABELS[0], "fraction": 1.0, "generator": family}, overrides={"gan": base | gan},
                        options={"resume": resume}, ctx=RunContext(progress=False))
        return out.cached

    assert not train("dcgan", "a") and not train("fastgan", "a")
    # FastGAN-lite's step share changed: the DCGAN is restored, FastGAN-lite retrains
    assert train("dcgan", "b", fastgan_step_share=0.5) and not train("fastgan", "b", fastgan_step_share=0.5)
    # the DCGAN's width changed: FastGAN-lite (at run a's settings) is restored, the DCGAN retrains
    assert train("fastgan", "c", ngf=8, lr_g=1e-3) and not train("dcgan", "c", ngf=8)
    for family, other in (("dcgan", "fastgan"), ("fastgan", "dcgan")):
        run = GanRun.load(tmp_path / "b" / family)
        assert not set(FAMILY_ONLY[other]) & set(run.params), (family, sorted(run.params))
        assert set(FAMILY_ONLY[family]) <= set(run.params) and run.params["generator"] == family
    assert GanRun.load(tmp_path / "b" / "fastgan").params["fastgan_step_share"] == 0.5
    # resuming a DCGAN checkpoint: FastGAN settings do not count, the DCGAN's own do
    assert not train("dcgan", "b", resume=True, fastgan_step_share=0.25, fastgan_lr=0.1)
    with pytest.raises(InputError, match=r"params differ: ngf=16->8"):
        train("dcgan", "b", resume=True, ngf=8)


def test_a_familys_gans_do_not_read_the_other_familys_fields(phantom_store: Path, tmp_path: Path) -> None:
    """What makes the family-aware cache key safe (lusynth.gan.params.FAMILY_ONLY): every field listed
    as another family's changes nothing of this family's training. Each family is trained twice, the
    second time with all of the other family's own fields moved off their defaults, and ends with
    bitwise the same weights, history and chosen checkpoint."""
    from lusynth.gan.params import FAMILY_ONLY

    moved = {"ngf": 12, "ndf": 12, "dropout": 0.1, "instance_noise": 0.2, "lr_g": 5e-4, "lr_d": 5e-4,
             "fastgan_width": 8, "fastgan_recon_weight": 0.5, "fastgan_downscale": 2, "fastgan_lr": 5e-4, "fastgan_step_share": 0.5}
    assert set(moved) == {f for names in FAMILY_ONLY.values() for f in names}
    for family, other in (("dcgan", "fastgan"), ("fastgan", "dcgan")):
        runs = []
        for name, extra in (("base", {}), ("moved", {f: moved[f] for f in FAMILY_ONLY[other]})):
            out = tmp_path / family / name
            runs.append(train_gan(phantom_store, out, label=LABELS[0], fraction=1.0, generator=family, progress=False,
                                  params=tiny_params(epochs=2, eval_every=1, **extra)))
        a, b = runs
        assert (a.steps, a.chosen["step"]) == (b.steps, b.chosen["step"]), family
        assert a.history == b.history, family
        ga, gb = load_checkpoint(a.path / "checkpoints" / "last.pt"), load_checkpoint(b.path / "checkpoints" / "last.pt")
        for net in ("generator", "discriminator"):
            assert ga[net].keys() == gb[net].keys() and all(torch.equal(ga[net][k], gb[net][k]) for k in ga[net]), (family, net)
        assert a.params == b.params, family  # and the records are the same: neither shows the moved fields
