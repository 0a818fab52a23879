"""A small corpus of good and bad input files, for reader and ingest tests.

``build_bad_input_corpus(root)`` writes every file under ``root`` and returns
``{relative_path: expected_reason}``: the reason ingest must report for that file, or ``None``
for files that must be accepted. The files in :data:`PREPROCESS_REJECTS` are decoded fine by
the readers and rejected later by ``prepare_frame`` (``too_small``, ``empty``).

DICOM files carry the recognisable header values in :data:`DICOM_PHI` so ingest tests can assert
that none of them reaches a frame store, a manifest or a report.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

W, H = 96, 80  # small but above the default min_side (32), not square (exercises crop/pad)
VIDEO_FRAMES = 24
DICOM_FRAMES = 5

#: Header values written into every DICOM of the corpus; none may leave the reader.
DICOM_PHI = {
    "PatientName": "DOE^JANE",
    "PatientID": "PHI-ID-4711",
    "InstitutionName": "ST ELSEWHERE HOSPITAL",
    "PatientBirthDate": "19700101",
}

#: Side of the decompression-bomb PNG: 12000 x 12000 grey zeros compress to about 140 KB.
BOMB_SIDE = 12000

#: Accepted by read_frames, rejected by prepare_frame (with the reason in the corpus dict).
PREPROCESS_REJECTS = frozenset({"images/tiny_8x8.png", "images/all_black.png"})


def _pattern(h: int, w: int, t: int = 0, *, seed: int = 0) -> np.ndarray:
    """Deterministic grey test pattern: a moving gradient plus speckle-like noise, uint8."""
    rng = np.random.default_rng(seed + t)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 120 * (0.5 + 0.5 * np.sin((xx + 3 * t) / 9.0) * np.cos(yy / 7.0))
    noise = rng.normal(0, 12, size=(h, w))
    return np.clip(base + noise, 1, 255).astype(np.uint8)


def _rgb_pattern(h: int, w: int, t: int = 0) -> np.ndarray:
    g = _pattern(h, w, t)
    return np.stack([g, np.roll(g, 5, axis=1), 255 - g], axis=-1)


def _save_png(path: Path, arr: np.ndarray, **kw) -> bytes:  # type: ignore[no-untyped-def]
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def bomb_png(path: Path, width: int, height: int) -> bytes:
    """A valid all-black grey PNG of ``width x height`` written without holding its pixels (zlib
    streams the rows): the ~140 KB file that decodes to 144 MB at 12000 x 12000."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join([*(z.compress(row) for _ in range(height)), z.flush()])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return data


def huge_video(path: Path, side: int = 5200) -> None:
    """A one-frame MJPEG clip of ``side x side`` (27 Mpixels at 5200: above the default max_pixels)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 40, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)


def _write_video(path: Path, codec: str, n: int = VIDEO_FRAMES, *, faststart: bool = False) -> None:
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "threads": "1"}
        for t in range(n):
            frame = av.VideoFrame.from_ndarray(_rgb_pattern(H, W, t), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _dicom_dataset(pixels: np.ndarray, *, photometric: str, sop_class: str, frames: int = 1):  # type: ignore[no-untyped-def]
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["lusynth-corpus", photometric, str(frames)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    for keyword, value in DICOM_PHI.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = H, W  # every corpus DICOM is H x W (times frames, times samples)
        ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def _write_dicom(path: Path, ds, *, preamble: bool = True) -> None:  # type: ignore[no-untyped-def]
    if preamble:
        ds.preamble = b"\0" * 128
        ds.save_as(path, enforce_file_format=True)
    else:
        # A raw dataset: no preamble, no 'DICM', no file meta (what some old exports look like).
        ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)


def build_bad_input_corpus(root: Path) -> dict[str, str | None]:
    """Write the corpus under ``root``; return {relative_path: expected ingest reason or None}."""
    from PIL import Image
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless, UltrasoundImageStorage, UltrasoundMultiFrameImageStorage

    root = Path(root)
    for sub in ("images", "videos", "dicom", "other"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def put(rel: str, reason: str | None) -> Path:
        expected[rel] = reason
        return root / rel

    grey = _pattern(H, W)
    rgb = _rgb_pattern(H, W)

    # --- images
    png = _save_png(put("images/grey.png", None), grey)
    put("images/truncated.png", "truncated").write_bytes(png[: len(png) // 2])
    put("images/zero_bytes.png", "zero_bytes").write_bytes(b"")
    put("images/text_renamed.png", "unreadable").write_text("this is a text file, not a PNG\n" * 4)
    grey16 = (grey.astype(np.uint16) * 257 - np.arange(W, dtype=np.uint16)[None, :]).astype(np.uint16)
    _save_png(put("images/grey16.png", None), grey16)
    rgba = np.dstack([rgb, np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))])
    _save_png(put("images/rgba.png", None), rgba)
    Image.fromarray(rgb).quantize(colors=16, dither=Image.Dither.NONE).save(put("images/palette.png", None))
    Image.fromarray(grey).save(put("images/grey.jpg", None), quality=90)
    Image.fromarray(rgb).save(put("images/rgb.bmp", None))
    Image.fromarray(grey16).save(put("images/grey16.tif", None))
    pages = [Image.fromarray(_pattern(H, W, t)) for t in range(4)]
    pages[0].save(put("images/multipage.tif", None), save_all=True, append_images=pages[1:])
    _save_png(put("images/tiny_8x8.png", "too_small"), _pattern(8, 8))
    _save_png(put("images/all_black.png", "blank_frame"), np.zeros((H, W), np.uint8))
    # decompression bombs (issue 15 item 8): rejected from the header, before any pixel is decoded
    bomb = bomb_png(put("images/bomb_12000.png", "too_many_pixels"), BOMB_SIDE, BOMB_SIDE)
    put("images/bomb_header_only.png", "too_many_pixels").write_bytes(bomb[:4096])  # decoding would say "truncated"

    # --- videos
    _write_video(put("videos/valid.mp4", None), "libx264")
    _write_video(put("videos/valid.avi", None), "mpeg4")
    gif_frames = [Image.fromarray(_pattern(H, W, t)) for t in range(6)]
    gif_frames[0].save(put("videos/anim.gif", None), save_all=True, append_images=gif_frames[1:], duration=80, loop=0)
    # A real mp4 cut to 40%: the index (moov) sits at the end, so nothing can be decoded.
    mp4 = (root / "videos/valid.mp4").read_bytes()
    put("videos/cut.mp4", "unreadable").write_bytes(mp4[: int(len(mp4) * 0.4)])
    # A faststart mp4 (index first) cut to 60%: opens, announces all frames, decoding stops early.
    fast = root / "videos/_faststart.mp4"
    _write_video(fast, "libx264", n=48, faststart=True)
    data = fast.read_bytes()
    fast.unlink()
    put("videos/truncated_faststart.mp4", "truncated").write_bytes(data[: int(len(data) * 0.6)])
    # A real mp4 whose container header bytes are overwritten: not recognisable as a video.
    damaged = bytearray(mp4)
    damaged[: min(len(damaged), 512)] = b"\xff" * min(len(damaged), 512)
    put("videos/corrupt_header.mp4", "unreadable").write_bytes(bytes(damaged))
    huge_video(put("videos/huge_5200.avi", "too_many_pixels"))

    # --- other
    put("other/notes.txt", "unsupported_extension").write_text("not an input\n")

    # --- DICOM
    _write_dicom(
        put("dicom/single.dcm", None),
        _dicom_dataset(grey, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage),
    )
    multi = np.stack([_pattern(H, W, t) for t in range(DICOM_FRAMES)])
    _write_dicom(
        put("dicom/multiframe.dcm", None),
        _dicom_dataset(multi, photometric="MONOCHROME2", sop_class=UltrasoundMultiFrameImageStorage, frames=DICOM_FRAMES),
    )
    _write_dicom(
        put("dicom/mono1.dcm", None),
        _dicom_dataset(grey, photometric="MONOCHROME1", sop_class=UltrasoundImageStorage),
    )
    _write_dicom(
        put("dicom/rgb.dcm", None),
        _dicom_dataset(rgb, photometric="RGB", sop_class=UltrasoundImageStorage),
    )
    _write_dicom(
        put("dicom/ybr_full.dcm", None),
        _dicom_dataset(_rgb_to_ybr_full(rgb), photometric="YBR_FULL", sop_class=UltrasoundImageStorage),
    )
    _write_dicom(
        put("dicom/no_extension_with_preamble", None),
        _dicom_dataset(grey, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage),
    )
    _write_dicom(
        put("dicom/raw_no_preamble.dcm", None),
        _dicom_dataset(grey, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage),
        preamble=False,
    )
    _write_dicom(
        put("dicom/no_pixels.dcm", "no_pixel_data"),
        _dicom_dataset(None, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage),  # type: ignore[arg-type]
    )
    huge = _dicom_dataset(grey, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage)
    huge.Rows, huge.Columns = 20000, 20000  # the header declares 400 Mpixels; the pixel data is small
    _write_dicom(put("dicom/huge_rows_columns.dcm", "too_many_pixels"), huge)
    # JPEG-LS needs a plugin (pylibjpeg / gdcm / pyjpegls). Without one the file is "unsupported";
    # with one, these bytes are not a JPEG-LS stream and the file is "unreadable".
    jls = _dicom_dataset(grey, photometric="MONOCHROME2", sop_class=UltrasoundImageStorage)
    jls.file_meta.TransferSyntaxUID = JPEGLSLossless
    from pydicom.encaps import encapsulate

    jls.PixelData = encapsulate([b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"])
    jls["PixelData"].VR = "OB"
    _write_dicom(
        put("dicom/jpegls.dcm", "unreadable" if get_decoder(JPEGLSLossless).is_available else "unsupported"), jls
    )
    return expected


def _rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    from pydicom.pixels import convert_color_space

    return convert_color_space(rgb, "RGB", "YBR_FULL")


def build_mutated_corpus(root: Path) -> list[str]:
    """Damaged copies of every file of :func:`build_bad_input_corpus` that decodes: cut to 16 bytes,
    cut in half, cut by its last byte, and with 64 bytes in the middle overwritten. Written under
    ``root/mutated``; returns their paths relative to ``root``. Any outcome but a crash is right
    (some damage leaves a decodable file)."""
    base = root / "_base"
    expected = build_bad_input_corpus(base)
    out: list[str] = []
    for rel, reason in sorted(expected.items()):
        if reason is not None:
            continue
        data = (base / rel).read_bytes()
        mid = len(data) // 2
        variants = {"cut16": data[:16], "half": data[:mid], "lastbyte": data[:-1],
                    "overwritten": data[:mid] + bytes((b ^ 0xA5) for b in data[mid : mid + 64]) + data[mid + 64 :]}
        for name, blob in variants.items():
            target = Path("mutated") / name / rel
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            (root / target).write_bytes(blob)
            out.append(target.as_posix())
    import shutil

    shutil.rmtree(base)
    return out


def build_hostile_folder(data: Path) -> dict[str, str]:
    """Entries a careless or hostile user leaves in a class-folder source, under ``data/a/a0``,
    ``data/b/b0``, ``data/b/b1`` and ``data``; returns {name as the report shows it: expected reason}."""
    import os

    a = data / "a" / "a0"
    for d in (a, data / "b" / "b0", data / "b" / "b1"):
        d.mkdir(parents=True, exist_ok=True)
    expected = {}
    (a / "notes.txt").write_text("not an input")
    expected["a/a0/notes.txt"] = "unsupported_extension"
    (a / "loop.png").symlink_to("loop.png")
    expected["a/a0/loop.png"] = "symlink_loop"
    (a / "up").symlink_to("..")
    expected["a/a0/up"] = "symlink_loop"
    (a / "gone.png").symlink_to("nowhere.png")
    expected["a/a0/gone.png"] = "broken_symlink"
    (a / "folder.png").mkdir()
    expected["a/a0/folder.png"] = "not_a_file"
    os.mkfifo(a / "pipe.png")  # opening it would block ingest forever
    expected["a/a0/pipe.png"] = "not_a_file"
    (a / "zero.png").write_bytes(b"")
    expected["a/a0/zero.png"] = "zero_bytes"
    _save_png(a / "black.png", np.zeros((64, 64), np.uint8))
    expected["a/a0/black.png"] = "blank_frame"
    (a / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    expected["a/a0/.DS_Store"] = "hidden"
    (data / "labels.csv").write_text("path,label,patient_id\n")
    expected["labels.csv"] = "unused_csv"
    (data / "b" / "b0" / "bad\nname.png").write_text("two lines\n")  # a newline in the name
    expected["b/b0/bad\nname.png"] = "unreadable"
    (data / "b" / "b1" / os.fsdecode(b"caf\xe9.png")).write_bytes(b"latin-1 name, not a PNG")
    expected["b/b1/caf\\xe9.png"] = "unreadable"
    return expected
