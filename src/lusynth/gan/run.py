"""The ``train-gan`` stage artefact: :class:`GanRun`, what one finished GAN directory says about itself.

Two files of the directory belong to it (the rest of the layout is in :mod:`lusynth.gan.train`
and :mod:`lusynth.gan.checkpoint`)::

    gan.json               summary, written last: its presence means the directory is complete
    fidelity_history.json  one entry per evaluation (step, epoch, fidelity metrics, checkpoint)

Other stages read them through :meth:`GanRun.load`, never by file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from lusynth.atomic import atomic_write_json
from lusynth.errors import InputError
from lusynth.keys import GanKey
from lusynth.util import read_json

__all__ = ["GAN_FILE", "HISTORY_FILE", "GanRun"]

GAN_FILE = "gan.json"
HISTORY_FILE = "fidelity_history.json"
# gan.json's key for a field where the two names differ
_SAVED_AS = {"images_per_second": "images_per_second_this_session"}
# fields gan.json does not hold under their own name: the directory, the key (saved as label and
# fraction), the run id (saved twice), the history (its own file), this session's time (not saved)
_NOT_SAVED_AS_IS = ("path", "key", "run_id", "history", "train_seconds")


@dataclass
class GanRun:
    """One trained GAN: where it is, what it learnt (``key``), how, and which checkpoint was chosen.

    Field names follow ``gan.json``'s keys, except ``key`` (its ``label`` and ``fraction``),
    ``run_id`` (saved as both ``run_id`` and ``mlflow_run_id``) and ``images_per_second`` (saved as
    ``images_per_second_this_session``). ``train_seconds`` is this session's training time; it is
    not saved, so a loaded run has ``None``.
    """

    WHAT: ClassVar[str] = "a GAN directory (the output of `lusynth train-gan`)"

    path: Path
    key: GanKey
    run_id: str | None = None  # the MLflow run
    frames_digest: str = ""  # the frame store trained on (lusynth.data.framestore digest)
    frames_dir: str = ""
    device: str = ""
    threads: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # lusynth.gan.params.GanParams as a dict
    config: dict[str, Any] = field(default_factory=dict)  # the network config + its "family" (lusynth.gan.families.config_dict)
    n_train: int = 0
    n_val: int = 0
    n_holdout: int = 0
    steps: int = 0
    epochs: int = 0
    chosen: dict[str, Any] = field(default_factory=dict)  # checkpoint, step, epoch, metrics
    selection: dict[str, Any] = field(default_factory=dict)  # rule, its inputs and why this checkpoint
    params_g: int = 0
    params_d: int = 0
    flops_per_image: dict[str, float] = field(default_factory=dict)  # g_forward, d_forward, train_step
    images_per_second: float = 0.0  # this session's training throughput
    resumed: bool = False
    mirror: dict[str, Any] = field(default_factory=dict)  # checkpoint mirror uri, restored, pushes; {} = none
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)  # fidelity_history.json
    train_seconds: float | None = None

    @property
    def label(self) -> str:
        """The class this GAN learnt."""
        return self.key.label

    @property
    def fraction(self) -> float:
        """The training fraction it saw (canonical, see :mod:`lusynth.keys`)."""
        return self.key.fraction

    @property
    def family(self) -> str:
        """The generator family, ``dcgan`` or ``fastgan``: its key's (a run from before FastGAN recorded none: a DCGAN)."""
        return self.key.generator

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run (``gan.json`` holds it under both names)."""
        return self.run_id

    def to_json(self) -> dict[str, Any]:
        """The ``gan.json`` document."""
        out: dict[str, Any] = {**self.key.as_dict(), "mlflow_run_id": self.run_id, "run_id": self.run_id}
        out.update({_SAVED_AS.get(f.name, f.name): getattr(self, f.name) for f in fields(self) if f.name not in _NOT_SAVED_AS_IS})
        if not self.mirror:  # no mirror, no key (as train-gan always wrote it)
            del out["mirror"]
        return out

    def summary(self) -> str:
        """What a terminal shows after training."""
        c = self.chosen or {}
        m = c.get("metrics") or {}
        figures = ", ".join(f"{k} {m[k]:.3f}" for k in ("nn1_embed", "mmd_embed", "nn1_pixels", "memorisation_rate") if k in m)
        return (f"{self.key}: {self.steps} steps on {self.device}; chosen step {c.get('step')} (epoch {c.get('epoch')}): {figures}\n"
                f"mlflow run {self.run_id}; outputs in {self.path}")

    def kfp_metrics(self) -> dict[str, float]:
        """The chosen checkpoint's fidelity, for the KFP UI."""
        return {k: float(v) for k, v in ((self.chosen or {}).get("metrics") or {}).items() if isinstance(v, (int, float))}

    def save(self, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write ``fidelity_history.json``, then ``gan.json`` (last: its presence means the
        directory is complete) into ``directory`` (default ``self.path``); return gan.json's path."""
        d = Path(directory) if directory is not None else self.path
        atomic_write_json(d / HISTORY_FILE, self.history)
        atomic_write_json(d / GAN_FILE, self.to_json())
        return d / GAN_FILE

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """Whether ``directory`` holds a finished run (its ``gan.json``)."""
        return (Path(directory) / GAN_FILE).is_file()

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> GanRun:
        """The run saved in ``directory``; an unfinished or missing one raises :class:`InputError`
        saying how to make it. Keys missing from ``gan.json`` keep the field defaults."""
        d = Path(directory)
        hint = f"train it with `lusynth train-gan --out {d}` (or --resume it)"
        meta = read_json(d / GAN_FILE, what="a finished train-gan directory", hint=hint)
        if not isinstance(meta, dict) or "label" not in meta or "fraction" not in meta:
            raise InputError(f"{d / GAN_FILE}: no label and fraction; {hint}")
        history = read_json(d / HISTORY_FILE, hint=hint) if (d / HISTORY_FILE).is_file() else []
        saved = {f.name: _SAVED_AS.get(f.name, f.name) for f in fields(cls) if f.name not in _NOT_SAVED_AS_IS}
        values = {name: meta[key] for name, key in saved.items() if key in meta}
        return cls(path=d, key=GanKey.from_dict(meta),
                   run_id=meta.get("mlflow_run_id") or meta.get("run_id"), history=list(history), **values)
