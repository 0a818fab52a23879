"""The pipeline's stages as plain functions: the one place the KFP components, the CLI commands
(and so DVC) call. Each resolves its parameters from a profile (+ overrides), then runs the stage's
library function through the content-addressed stage cache (:mod:`lusynth.stagecache`; the CLI
passes ``cache=False`` because DVC caches for itself), so identical inputs are restored instead of
recomputed and a changed parameter reruns only what depends on it.

Also here: the experiment plan (which GANs and which classifiers a run trains) — the KFP pipeline
fans out over these lists, so the grid is defined once, in the library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lusynth.errors import InputError
from lusynth.params import as_dict, stage_params
from lusynth.stagecache import run_cached

ARMS = ("real", "real+synthetic", "synthetic")


@dataclass(frozen=True)
class StageOutcome:
    """What a stage call did: where its output is and whether it came from the cache."""

    stage: str
    out: Path
    cached: bool


def _clean(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Drop unset overrides (None); the profile's value applies to those."""
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def zero_is_unset(**values: Any) -> dict[str, Any]:
    """Pipeline / DVC integer parameters use 0 (and '' / []) for "the profile's value": map those to
    None so :func:`_clean` drops them. One place for the convention, used by every driver."""
    return {k: (None if (v in ("", [], ()) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)) else v)
            for k, v in values.items()}


def expand_dirs(paths: Sequence[str | os.PathLike[str]], marker: str, what: str) -> list[Path]:
    """Stage directories among ``paths`` (those holding ``marker``), looking one level into parents,
    so a DVC stage can pass ``models/classifier`` for every classifier below it."""
    out: list[Path] = []
    for p in map(Path, paths):
        found = [p] if (p / marker).is_file() else sorted(q for q in p.iterdir() if (q / marker).is_file()) if p.is_dir() else []
        if not found:
            raise InputError(f"{p}: not a {what} (no {marker}) nor a folder of them; pass the output directory of that stage")
        out.extend(found)
    return out


# --------------------------------------------------------------------------------------------
# plan


def plan_gans(frames: str | os.PathLike[str], fractions: Sequence[float]) -> list[dict[str, Any]]:
    """One GAN per (class, training fraction), as in the paper."""
    from lusynth.data.framestore import open_store

    store = open_store(frames)
    available = [float(f) for f in store.header.get("train_fractions", [1.0])]
    missing = [f for f in fractions if not any(abs(f - a) < 1e-9 for a in available)]
    if missing:
        raise InputError(f"{frames}: training fraction(s) {missing} were not prepared at ingest (have {available}); re-ingest with --train-fractions")
    return [{"label": c, "fraction": float(f)} for f in sorted(fractions) for c in store.classes]


def plan_classifiers(arms: Sequence[str], fractions: Sequence[float], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """The experiment grid: arm x training fraction x seed."""
    bad = [a for a in arms if a not in ARMS]
    if bad:
        raise InputError(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
    if not arms or not fractions or not seeds:
        raise InputError("the experiment needs at least one arm, one fraction and one seed")
    return [{"arm": a, "fraction": float(f), "seed": int(s)} for f in sorted(fractions) for a in arms for s in seeds]


def synthetic_store_info(store: str | os.PathLike[str]) -> tuple[list[str], float]:
    """(classes, GAN training fraction) of a synthetic frame store."""
    from lusynth.gan.generate import SyntheticSet

    keys = SyntheticSet.load(store).keys
    fractions = {k.fraction for k in keys}
    if len(fractions) != 1:
        raise InputError(f"{store}: synthetic store must come from GANs of one training fraction, header says {sorted(fractions)}; regenerate it")
    return sorted(k.label for k in keys), fractions.pop()


def bundle_synthetic(synthetic_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Gather synthetic stores into one directory (``<label>@<fraction>/`` each, hard-linked).

    The KFP compiler cannot pass a fan-in (``dsl.Collected``) of one loop into another loop, so
    the classifier loop receives this one bundle instead.
    """
    from lusynth.atomic import atomic_dir
    from lusynth.stagecache import link_tree

    with atomic_dir(out) as tmp:
        for d in synthetic_dirs:
            labels, fraction = synthetic_store_info(d)
            link_tree(Path(d), tmp / f"{'+'.join(labels)}@{fraction:g}")
    return Path(out)


def _stores_in(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Frame stores among ``paths``, looking one level into bundles."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "header.json").is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if (q / "header.json").is_file()))
    return out


def synthetic_for_fraction(synthetic_dirs: Sequence[str | os.PathLike[str]], fraction: float) -> list[Path]:
    """The synthetic stores (or bundles of them) made by GANs trained at ``fraction`` (one per class)."""
    return sorted(d for d in _stores_in(synthetic_dirs) if abs(synthetic_store_info(d)[1] - fraction) < 1e-9)


# --------------------------------------------------------------------------------------------
# stages


def ingest_stage(
    out: str | os.PathLike[str],
    *,
    source: str | None = None,
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> StageOutcome:
    """Ingest ``source`` (None/'' = the built-in phantom) into a frame store at ``out``."""
    from lusynth.data.ingest import ingest

    params = stage_params("ingest", profile, _clean(overrides))
    phantom = stage_params("phantom", profile, {"seed": params.seed}) if not source else None
    key_params = {"ingest": as_dict(params), "phantom": as_dict(phantom) if phantom else None, "source": source or "phantom"}
    # a local source is keyed by its bytes; s3:// and dvc:// sources by their URI (pin a dvc:// revision)
    inputs = [source] if source and "://" not in source else []
    _, cached = run_cached(
        "ingest", out, params=key_params, inputs=inputs,
        run=lambda o: ingest(source or None, o, params=params, report_dir=report_dir, phantom=phantom, progress=progress),
        enabled=cache,
    )
    return StageOutcome("ingest", Path(out), cached)


def train_gan_stage(
    frames: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    label: str,
    fraction: float,
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    cache: bool = True,
    mirror_root: str | None = None,
) -> StageOutcome:
    """Train the GAN of one class at one training fraction (``resume``: continue ``out``'s last checkpoint).

    ``mirror_root`` (an ``s3://`` prefix or a directory): the run's resumable state is mirrored to
    ``<mirror_root>/<class>-<fraction>-<stage key>`` after every epoch, and the run resumes from
    there when its output directory lacks it: a retried KFP task on a fresh pod continues instead
    of starting over. The stage key (data, parameters, code) keeps runs that differ apart.
    """
    from lusynth.gan.mirror import mirror_uri
    from lusynth.gan.train import train_gan
    from lusynth.stagecache import stage_key

    params = stage_params("gan", profile, _clean(overrides))
    near_copy = stage_params("near_copy", profile)
    key = {"gan": as_dict(params), "near_copy": as_dict(near_copy), "label": label, "fraction": float(fraction)}
    mirror = mirror_uri(mirror_root, stage_key("train_gan", key, [frames]), label, fraction) if mirror_root else None
    _, cached = run_cached(
        "train_gan", out, params=key, inputs=[frames],
        run=lambda o: train_gan(frames, o, label=label, fraction=fraction, params=params, near_copy=near_copy,
                                resume=resume or bool(mirror), progress=progress, mirror=mirror),
        enabled=cache and not resume,  # a resumed run continues its own directory, never a cached copy
    )
    return StageOutcome(f"train_gan[{label}@{fraction:g}]", Path(out), cached)


def generate_stage(
    gan: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    frames: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    near_copy_overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> StageOutcome:
    """Synthetic frames (privacy-filtered) from one trained GAN (or one per class);
    ``near_copy_overrides`` go on top of the profile's ``near_copy`` section (the filter's rule)."""
    from lusynth.gan.generate import generate

    params = stage_params("generate", profile, _clean(overrides))
    near_copy = stage_params("near_copy", profile, _clean(near_copy_overrides))
    gans = [gan] if isinstance(gan, (str, os.PathLike)) else list(gan)
    _, cached = run_cached(
        "generate", out, params={"generate": as_dict(params), "near_copy": as_dict(near_copy)}, inputs=[*gans, frames],
        run=lambda o: generate(gan, frames, o, params=params, near_copy=near_copy),
        enabled=cache,
    )
    return StageOutcome("generate", Path(out), cached)


def train_classifier_stage(
    frames: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    arm: str,
    fraction: float,
    seed: int,
    synthetic: Sequence[str | os.PathLike[str]] = (),
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> StageOutcome:
    """Train the classifier of one arm at one fraction and seed; ``synthetic`` may hold every
    fraction's synthetic stores — the ones of this fraction are selected here."""
    from lusynth.classifier.train import train_classifier

    params = stage_params("classifier", profile, _clean(overrides))
    syn = synthetic_for_fraction(synthetic, fraction) if arm != "real" else []
    if arm != "real" and not syn:
        raise InputError(f"arm {arm!r} at fraction {fraction} needs synthetic frames, but no synthetic store was made at that fraction")
    key = {"classifier": as_dict(params), "arm": arm, "fraction": float(fraction), "seed": int(seed)}
    _, cached = run_cached(
        "train_classifier", out, params=key, inputs=[frames, *syn],
        run=lambda o: train_classifier(frames, o, arm=arm, fraction=fraction, seed=seed, synthetic_dirs=syn, params=params, progress=progress),
        enabled=cache,
    )
    return StageOutcome(f"train_classifier[{arm}@{fraction:g}#{seed}]", Path(out), cached)


def evaluate_stage(
    frames: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classifiers: Sequence[str | os.PathLike[str]],
    gans: Sequence[str | os.PathLike[str]] = (),
    synthetic: Sequence[str | os.PathLike[str]] = (),
    profile: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> StageOutcome:
    """Holdout evaluation, fidelity and privacy audit, and the report."""
    from lusynth.evaluate.run import evaluate

    params = stage_params("evaluate", profile, _clean(overrides))
    near_copy = stage_params("near_copy", profile)
    # sorted so the key (and the report's order) does not depend on the engine's fan-in order
    classifiers = sorted(map(str, expand_dirs(classifiers, "classifier.json", "classifier directory")))
    gans = sorted(map(str, expand_dirs(gans, "gan.json", "GAN directory")))
    synthetic = sorted(map(str, _stores_in(synthetic)))
    _, cached = run_cached(
        "evaluate", out, params={"evaluate": as_dict(params), "near_copy": as_dict(near_copy)}, inputs=[frames, *classifiers, *gans, *synthetic],
        run=lambda o: evaluate(frames, o, classifier_dirs=classifiers, gan_dirs=gans, synthetic_dirs=synthetic, params=params,
                               near_copy=near_copy, progress=progress),
        enabled=cache,
    )
    return StageOutcome("evaluate", Path(out), cached)


def export_register_stage(
    out: str | os.PathLike[str],
    *,
    classifiers: Sequence[str | os.PathLike[str]],
    gans: Sequence[str | os.PathLike[str]] = (),
    evaluation: str | os.PathLike[str] | None = None,
    register: bool = True,
    profile: str = "demo",
    cache: bool = True,
    **options: Any,
) -> StageOutcome:
    """ONNX export of the best classifier per arm and each class's generator; with ``register``,
    model versions, model cards and the alias promotion gate in the MLflow registry. ``options``
    (names, margin, opset) go to :func:`lusynth.registry.export_and_register`."""
    from lusynth.registry import export_and_register
    from lusynth.tracking import tracking_uri

    classifiers = sorted(map(str, expand_dirs(classifiers, "classifier.json", "classifier directory")))
    gans = sorted(map(str, expand_dirs(gans, "gan.json", "GAN directory"))) if gans else []
    # the registry is part of the key: the same models registered into another store are new work
    key = {"register": register, "profile": profile, "registry": tracking_uri(Path(out).parent) if register else None,
           "options": {k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in options.items()}}
    inputs = [*classifiers, *gans, *([evaluation] if evaluation else [])]
    _, cached = run_cached(
        "export_register", out, params=key, inputs=inputs,
        run=lambda o: export_and_register(o, classifier_dirs=classifiers, gan_dirs=gans, evaluation_dir=evaluation,
                                          register=register, profile=profile, **options),
        enabled=cache,
    )
    return StageOutcome("export_register", Path(out), cached)
