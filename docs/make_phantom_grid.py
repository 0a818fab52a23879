"""Render docs/phantom_grid.png: example phantom frames of both classes from several patients.

Run: ``python docs/make_phantom_grid.py`` (about a second). Rows alternate class
(no_consolidation, consolidation); columns are different patients (first frame of clip 1),
labelled with patient id and class.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from lusynth.data.phantom import CLASSES, PhantomParams, patient_id, render_clip


def grid(params: PhantomParams, *, rows_per_class: int = 2, cols: int = 4) -> Image.Image:
    """A labelled grid: ``rows_per_class`` rows per class, ``cols`` patients per row."""
    tiles: list[list[Image.Image]] = []
    for row in range(rows_per_class * len(CLASSES)):
        cls = row % len(CLASSES)
        line = []
        for col in range(cols):
            # patients alternate class, so class ``cls`` owns the indices cls, cls + 2, ...
            p = cls + 2 * (row // len(CLASSES) * cols + col)
            frames, label = render_clip(params, patient=p, clip=0)
            tile = Image.fromarray(frames[0]).convert("RGB")
            ImageDraw.Draw(tile).text((6, params.height - 16), f"{patient_id(p)} {label}", fill=(255, 220, 0))
            line.append(tile)
        tiles.append(line)
    gap = 4
    out = Image.new("RGB", (cols * (params.width + gap) - gap, len(tiles) * (params.height + gap) - gap), (40, 40, 40))
    for i, line in enumerate(tiles):
        for j, tile in enumerate(line):
            out.paste(tile, (j * (params.width + gap), i * (params.height + gap)))
    return out


def main(out: Path = Path(__file__).with_name("phantom_grid.png")) -> None:
    params = PhantomParams(patients=16, clips_per_patient=1, frames_per_clip=1)
    grid(params).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("phantom_grid.png"))
