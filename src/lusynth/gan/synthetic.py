"""The ``generate`` stage artefact: :class:`SyntheticSet`, a synthetic frame store and what made it.

Light on purpose (no torch): the stage table, a cached task, the classifier and the audit open a
set without the generator code (:mod:`lusynth.gan.generate` writes it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lusynth.data.framestore import FrameStore, open_store
from lusynth.errors import FrameStoreError, InputError
from lusynth.keys import GanKey

__all__ = ["NEAR_COPIES_DIR", "SyntheticSet"]

_NOT_SYNTHETIC = "not a synthetic frame store; pass the output of `lusynth generate`"
NEAR_COPIES_DIR = "near_copies"  # inside a synthetic set: the first round's frames the filter dropped


@dataclass
class SyntheticSet:
    """The output of :func:`lusynth.gan.generate.generate`: a synthetic frame store and what made it.

    ``keys`` has one :class:`~lusynth.keys.GanKey` per class the store holds (the label and the
    training fraction of the GAN that made it); ``privacy_filter`` is, per class, what the
    near-copy filter did (kept, generated, dropped, threshold, the policy) and which GAN it was.
    """

    WHAT: ClassVar[str] = "a synthetic set (the output of `lusynth generate`)"

    path: Path
    store: FrameStore = field(repr=False)
    keys: tuple[GanKey, ...]
    privacy_filter: dict[str, dict[str, Any]]
    source_frames_digest: str | None

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> SyntheticSet:
        """Open the synthetic frame store ``dir``; :class:`InputError` if it is not one."""
        path = Path(dir)
        try:
            store = open_store(path)
        except FrameStoreError as exc:
            raise InputError(f"{path}: {_NOT_SYNTHETIC} ({exc})") from None
        if store.kind != "synthetic":
            raise InputError(f"{path}: {_NOT_SYNTHETIC} (this one is of kind {store.kind!r})")
        header = store.header
        privacy_filter = dict(header.get("privacy_filter") or {})
        keys = []
        for label in sorted(set((header.get("counts") or {}).get("synthetic", {})) | set(store.withheld)):
            # generate records each class's GAN fraction; other writers one fraction for the store
            frac = (privacy_filter.get(label) or {}).get("fraction", header.get("fraction"))
            if frac is None:
                raise InputError(f"{path}: the header does not say which training fraction's GAN made class {label!r}; "
                                 "regenerate the store with `lusynth generate`")
            pf = privacy_filter.get(label) or {}
            keys.append(GanKey(label, frac, pf.get("gan_seed", 0), pf.get("fold", 0), pf.get("generator") or "dcgan"))
        return cls(path=path, store=store, keys=tuple(keys), privacy_filter=privacy_filter,
                   source_frames_digest=header.get("source_frames_digest"))

    @property
    def withheld(self) -> dict[str, str]:
        """Class -> why generate released none of its frames (its generator is treated as memorising)."""
        return {label: str(p["withheld"]) for label, p in self.store.withheld.items()}

    @property
    def per_class(self) -> dict[str, dict[str, Any]]:
        """Per class: kept, generated, dropped near-copies, threshold (the header's ``privacy_filter``)."""
        return self.privacy_filter

    def unfiltered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames, labels, dropped) of the generator's unfiltered output: every frame of the first
        round of latents (``0 .. n_per_class - 1`` per class: independent draws, before the
        near-copy filter), ``dropped`` True where the filter removed the frame. A store written
        by another tool, or by a generate that did not keep its near-copies, gives its frames as
        they are (``dropped`` all False)."""
        m = self.store.manifest
        info = self.store.header.get("unfiltered") or {}
        split = m["split"].to_numpy()
        kept_rows = np.flatnonzero(split == "synthetic")
        near = self.path / str(info.get("near_copies", NEAR_COPIES_DIR))
        if not info or not near.is_dir():
            return np.asarray(self.store.frames[kept_rows]), m["label"].to_numpy()[kept_rows], np.zeros(len(kept_rows), bool)
        first = int(info["first_round"])
        latent = pd.to_numeric(m["latent_index"], errors="coerce").to_numpy()
        kept_rows = kept_rows[latent[kept_rows] < first]
        withheld_rows = np.flatnonzero(split == "withheld")  # a withheld class's whole first round: released as nothing
        dropped = open_store(near)
        frames = np.concatenate([np.asarray(self.store.frames[kept_rows]), np.asarray(self.store.frames[withheld_rows]),
                                 np.asarray(dropped.frames)])
        labels = np.concatenate([m["label"].to_numpy()[kept_rows], m["label"].to_numpy()[withheld_rows], dropped.manifest["label"].to_numpy()])
        return frames, labels, np.r_[np.zeros(len(kept_rows), bool), np.ones(len(withheld_rows) + len(dropped), bool)]

    @property
    def n_frames(self) -> int:
        return len(self.store)

    @property
    def fractions(self) -> set[float]:
        """The training fractions of the GANs that made this set."""
        return {k.fraction for k in self.keys}

    def summary(self) -> str:
        """Per class what the generator produced and what the near-copy filter removed."""
        lines = [f"{label}: kept {p.get('kept')} of {p.get('generated')} generated; dropped {p.get('dropped_near_copies')} near-copies "
                 f"(DCR < {p.get('threshold', float('nan')):.3f}, near-copy policy {p.get('near_copy')})"
                 + (f"; WITHHELD: {p['withheld']}" if p.get("withheld") else "") for label, p in self.per_class.items()]
        return "\n".join([*lines, f"synthetic set: {self.path}"])

    def kfp_metadata(self) -> dict[str, Any]:
        """What the KFP artefact's metadata shows."""
        return {"keys": [str(k) for k in self.keys], "n_frames": self.n_frames, "digest": self.store.digest,
                "withheld": sorted(self.withheld)}
