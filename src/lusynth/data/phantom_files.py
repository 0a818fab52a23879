"""Write the phantom as a dataset a user would hand to ingest: clips in mixed containers + labels.csv.

Layout under ``out/``::

    labels.csv                                  path,label,patient_id,video_id (paths relative to it)
    clips/PAT-0001/PAT-0001-V01/frame_000.png   a clip exported as a folder of PNG frames (one row per PNG)
    clips/PAT-0001/PAT-0001-V02.mp4             a clip as H.264 video (one row per clip)
    clips/PAT-0002/PAT-0002-V01.gif             a clip as animated GIF (one row per clip)

The container of each clip cycles through ``PhantomParams.formats``. The directory is written
atomically: a failure leaves no partial dataset behind. Pixels come from
:func:`lusynth.data.phantom.render_clip`; this module only encodes and writes.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from lusynth.atomic import atomic_dir
from lusynth.data.phantom import PhantomParams, patient_id, render_clip, video_id
from lusynth.progress import progress as progress_bar

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("path", "label", "patient_id", "video_id")


def _write_png_folder(folder: Path, frames: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(frame, mode="L").save(path)
        paths.append(path)
    return paths


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w", format="mp4") as container:
        # FFmpeg's own MPEG-4 Part 2 encoder at a fixed quantiser: libx264 gave different bytes
        # (and pixels) for the same frames from run to run, which breaks byte-identical ingest
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # one encoder thread: threaded encoding is another source of run-to-run byte changes
        stream.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        # fixed quantiser (a flag); its value 2 (in options) is near-transparent: keeps speckle and faint B-lines
        stream.codec_context.qscale = True
        stream.options = {"qscale": "2"}
        h, w = frames.shape[1:]
        # build the yuv420p planes ourselves (grey: chroma 128) rather than through swscale's
        # gray->yuv420p conversion, whose output was not byte-stable from run to run
        chroma = np.full((h // 2, w), 128, np.uint8)
        for frame in frames:
            planes = np.concatenate([np.ascontiguousarray(frame), chroma])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode(None))


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    images = [Image.fromarray(f, mode="L") for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def write_phantom_dataset(out: Path, params: PhantomParams, *, progress: bool = False) -> Path:
    """Render the phantom and write it under ``out`` (replacing it atomically); return labels.csv."""
    out = Path(out)
    rows: list[tuple[str, str, str, str]] = []
    total = params.patients * params.clips_per_patient
    with atomic_dir(out) as tmp, progress_bar(total, "phantom clips", enabled=progress, unit="clips") as advance:
        k = 0
        for p in range(params.patients):
            for c in range(params.clips_per_patient):
                frames, label = render_clip(params, patient=p, clip=c)
                fmt = params.formats[k % len(params.formats)]
                k += 1
                base = tmp / "clips" / patient_id(p)
                base.mkdir(parents=True, exist_ok=True)
                vid = video_id(p, c)
                if fmt == "png":
                    files = _write_png_folder(base / vid, frames)
                elif fmt == "mp4":
                    files = [base / f"{vid}.mp4"]
                    _write_mp4(files[0], frames, params.fps)
                else:
                    files = [base / f"{vid}.gif"]
                    _write_gif(files[0], frames, params.fps)
                rows += [(f.relative_to(tmp).as_posix(), label, patient_id(p), vid) for f in files]
                advance()
        with open(tmp / LABELS_FILE, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(LABEL_COLUMNS)
            writer.writerows(rows)
    return out / LABELS_FILE
