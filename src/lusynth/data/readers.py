"""Input readers: decode one image, video or DICOM file into numpy arrays (IO only).

Every reader yields ``(frame_index_in_source, array)`` with the pixels as found in the file:
2-D ``(H, W)`` or 3-D ``(H, W, 3|4)``, uint8 or uint16 (other integer types for DICOM). Turning
them into grey square frames is :mod:`lusynth.data.preprocess`'s job.

A file that cannot be used raises :class:`~lusynth.errors.RejectedInput` with a short reason code
(``zero_bytes``, ``unreadable``, ``truncated``, ``unsupported``, ``unsupported_extension``,
``no_pixel_data``, ``too_many_pixels``); ingest records it
in its report and goes on. No other exception escapes :func:`read_frames` for a bad file: decoder
errors are caught and their message is kept in ``detail``.

Memory: with ``max_pixels`` a frame's size is read from the header (PIL's lazy ``Image.open``, the
video stream's width and height, DICOM Rows x Columns) and an oversized file is rejected as
``too_many_pixels`` before any pixel is decoded: a 140 KB PNG can declare 12000 x 12000 pixels.

Privacy: the DICOM reader returns pixels only. No header value (patient name, IDs, dates,
institution) leaves this module, not even in an error message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lusynth.errors import RejectedInput

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mpeg", ".mpg", ".gif"}
DICOM_EXTS = {".dcm", ".dicom", ""}  # DICOM is recognised by its 'DICM' preamble too, whatever the name

_DICM_OFFSET = 128  # DICOM Part 10: 128-byte preamble, then b"DICM"
SAMPLING_MODES = ("even", "every")


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a clip (video, multi-page TIFF, multi-frame DICOM) become frames. Its defaults are
    the ingest stage's (``lusynth.data.ingest.IngestParams`` takes them from here)."""

    mode: str = "even"  # "even": `frames` frames spread evenly over the clip; "every": every `step`-th frame
    # 32, not 8: on the 29 POCUS clips 8 frames per clip left a GAN 16-56 training frames and 100-400 steps, and
    # its chosen checkpoint was near its start (grey noise); 32 gave frames a reader recognises as lung ultrasound
    # (benchmarks/results/README.md, "Frames per clip"). The phantom's clips have 8 frames, so its demo is unchanged
    frames: int = 32  # "even": how many frames per clip (first and last included)
    step: int = 5  # "every": keep frames 0, step, 2*step, ...
    max_frames: int = 64  # cap per clip in both modes

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"VideoSampling.mode={self.mode!r} is not one of {SAMPLING_MODES}; use 'even' or 'every'")
        for name in ("frames", "step", "max_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VideoSampling.{name}={value!r} must be an integer >= 1")

    @property
    def needs_count(self) -> bool:
        """True when the selected indices depend on the clip length ("even" mode)."""
        return self.mode == "even"

    def indices(self, n_frames: int) -> list[int]:
        """Sorted source indices to keep from a clip of ``n_frames`` frames."""
        if n_frames <= 0:
            return []
        if self.mode == "every":
            return list(range(0, n_frames, self.step))[: self.max_frames]
        k = min(self.frames, self.max_frames, n_frames)
        if k == 1:
            return [0]
        # linspace over [0, n-1] keeps the first and the last frame; rounding may merge neighbours
        # only when k > n, which the min() above excludes.
        return sorted({int(i) for i in np.linspace(0, n_frames - 1, k).round()})

    def keep(self, index: int) -> bool:
        """"every" mode without a known length: whether source frame ``index`` is kept."""
        return index % self.step == 0 and index // self.step < self.max_frames


def _has_dicm_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(_DICM_OFFSET + 4)
    except OSError:
        return False
    return len(head) == _DICM_OFFSET + 4 and head[_DICM_OFFSET:] == b"DICM"


def input_kind(path: Path) -> str | None:
    """'image' | 'video' | 'dicom' | None (unsupported), by extension and magic bytes.

    A file with the DICOM 'DICM' preamble is DICOM whatever its name; otherwise the lower-case
    extension decides (a file without extension is tried as DICOM, as PACS exports often are).
    """
    path = Path(path)
    if path.is_file() and _has_dicm_preamble(path):
        return "dicom"
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in DICOM_EXTS:
        return "dicom"
    return None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None, what: str = "frame") -> None:
    """Reject a frame whose declared size exceeds ``max_pixels`` (None: no limit), before decoding it."""
    if max_pixels is not None and width * height > max_pixels:
        raise RejectedInput(
            "too_many_pixels",
            f"{path.name}: the {what} declares {width}x{height} = {width * height:,} pixels, more than "
            f"ingest.max_pixels = {max_pixels:,}; not decoded (raise --max-pixels if frames this large are real)",
        )


def read_frames(path: Path, *, sampling: VideoSampling = VideoSampling(),
                max_pixels: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index_in_source, array)`` for every sampled frame of one file.

    ``array`` is the decoded pixels as found: 2-D (H, W) or 3-D (H, W, 3|4), dtype uint8 or
    uint16 (or other ints for DICOM). Single images yield one frame with index 0; clips,
    multi-page TIFFs and multi-frame DICOMs are sampled with ``sampling``.

    Raises RejectedInput(reason, detail) when the file cannot be used. Clips are decoded as a
    stream, so a clip that turns out truncated may raise after some frames were yielded: the
    caller keeps a file's frames only once the iterator is exhausted without error. ``max_pixels``
    bounds width x height of a frame, checked from the header before decoding (None: no limit).
    """
    path = Path(path)
    kind = input_kind(path)
    if kind is None:
        supported = ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS | (DICOM_EXTS - {""})))
        raise RejectedInput(
            "unsupported_extension",
            f"{path.name}: extension {path.suffix or '(none)'!r} is not a supported input; supported: {supported}",
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise RejectedInput("unreadable", f"{path.name}: cannot stat file: {e}") from None
    if size == 0:
        raise RejectedInput("zero_bytes", f"{path.name}: file has zero bytes")
    if kind == "image":
        yield from _read_image(path, sampling, max_pixels)
    elif kind == "video":
        yield from _read_video(path, sampling, max_pixels)
    else:
        yield from _read_dicom(path, sampling, max_pixels)


# --------------------------------------------------------------------------------------------
# images (PIL)


def _pil_array(im) -> np.ndarray:
    """Pixels of one loaded PIL frame as a 2-D or (H, W, 3|4) array, keeping 16-bit depth."""
    mode = im.mode
    if mode == "P" or mode == "PA":
        # A palette with transparency keeps its alpha so preprocess can composite it on black.
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "LA":
        im = im.convert("RGBA")  # grey + alpha: RGBA keeps the grey level and the alpha
    elif mode in ("1", "La"):
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "F":
        raise RejectedInput("unsupported", "floating-point images (PIL mode 'F') are not supported; export as 8- or 16-bit")
    arr = np.asarray(im)
    if not arr.dtype.isnative:  # e.g. "I;16B" TIFFs
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if mode.startswith("I") and arr.dtype != np.uint16:
        # PIL's "I" mode is int32 even for 16-bit sources; keep uint16 when the values fit.
        if arr.size and arr.min() >= 0 and arr.max() <= np.iinfo(np.uint16).max:
            arr = arr.astype(np.uint16)
    if arr.dtype.kind not in "ui":
        raise RejectedInput("unsupported", f"image pixel type {arr.dtype} (PIL mode {mode!r}) is not supported")
    return np.array(arr, copy=True)  # detach from PIL's buffer before the file closes


def _classify_pil_error(path: Path, e: BaseException) -> RejectedInput:
    msg = str(e) or type(e).__name__
    if isinstance(e, EOFError) or "truncated" in msg.lower():
        return RejectedInput("truncated", f"{path.name}: {msg}")
    return RejectedInput("unreadable", f"{path.name}: cannot decode as an image: {msg}")


def _read_image(path: Path, sampling: VideoSampling, max_pixels: int | None) -> Iterator[tuple[int, np.ndarray]]:
    from PIL import Image, ImageFile, UnidentifiedImageError

    # Truncated files must fail, not come back half grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    frames: list[tuple[int, np.ndarray]] = []
    try:
        with Image.open(path) as im:
            n = int(getattr(im, "n_frames", 1) or 1)
            indices = sampling.indices(n) if n > 1 else [0]
            for i in indices:
                if n > 1:
                    im.seek(i)  # reads the page's header only
                _check_pixels(path, im.size[0], im.size[1], max_pixels, "image" if n == 1 else f"page {i}")
                im.load()
                frames.append((i, _pil_array(im)))
    except RejectedInput:
        raise
    except Image.DecompressionBombError as e:  # PIL's own limit, when max_pixels is above it
        raise RejectedInput("too_many_pixels", f"{path.name}: {e}") from None
    except UnidentifiedImageError as e:
        raise RejectedInput("unreadable", f"{path.name}: not a decodable image ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, KeyError, TypeError) as e:
        raise _classify_pil_error(path, e) from None
    # Pages are yielded after the file decoded cleanly, so a broken page rejects the whole file.
    yield from frames


# --------------------------------------------------------------------------------------------
# videos (PyAV)

_GREY_FORMATS = {"gray": "gray", "gray8": "gray", "gray16le": "gray16le", "gray16be": "gray16le"}


def _frame_array(frame) -> np.ndarray:
    # Colour sources go through swscale to full-range RGB, so a clip and a screenshot of it give
    # the same grey after preprocess's luma; grey sources keep their own depth.
    fmt = _GREY_FORMATS.get(frame.format.name)
    if fmt is not None:
        return frame.to_ndarray(format=fmt)
    return frame.to_ndarray(format="rgb24")


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise RejectedInput("unreadable", f"{path.name}: cannot open as a video: {e}") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RejectedInput("unreadable", f"{path.name}: cannot open as a video: {e}") from None
    if not container.streams.video:
        container.close()
        raise RejectedInput("unsupported", f"{path.name}: the container has no video stream")
    return container


def _count_packets(path: Path) -> int:
    """Frame count of the first video stream by demuxing packets (no decode: cheap)."""
    import av

    try:
        with _open_video(path) as container:
            stream = container.streams.video[0]
            return sum(1 for p in container.demux(stream) if p.size > 0)
    except av.FFmpegError:
        return 0  # the decode pass reports the damage with its own message


def _read_video(path: Path, sampling: VideoSampling, max_pixels: int | None) -> Iterator[tuple[int, np.ndarray]]:
    import av

    from lusynth.runtime import cpu_quota

    with _open_video(path) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        if codec is None or codec.name in (None, "", "none"):
            raise RejectedInput("unsupported", f"{path.name}: no decoder for the video codec")
        _check_pixels(path, int(codec.width or 0), int(codec.height or 0), max_pixels, "video stream")
        # ffmpeg's auto thread count follows the host's cores, not this process's CPU quota.
        codec.thread_count = cpu_quota()
        expected = int(stream.frames or 0)
        wanted: set[int] | None = None
        if sampling.needs_count:
            if expected <= 0:  # e.g. MPEG-PS: no count in the header; demux once to count
                expected = _count_packets(path)
            if expected <= 0:
                raise RejectedInput("unreadable", f"{path.name}: no decodable video packets")
            wanted = set(sampling.indices(expected))
        last_wanted = max(wanted) if wanted else None

        index = -1
        kept = 0
        try:
            for frame in container.decode(stream):
                index += 1
                keep = index in wanted if wanted is not None else sampling.keep(index)
                # a stream may change size mid-way: check each frame before converting it
                _check_pixels(path, frame.width, frame.height, max_pixels, f"frame {index}")
                if keep:
                    kept += 1
                    yield index, _frame_array(frame)
                # Stop decoding as soon as nothing more can be selected (bounded work per clip).
                if wanted is not None and index >= last_wanted:  # type: ignore[operator]
                    break
                if wanted is None and kept >= sampling.max_frames:
                    break
        except av.FFmpegError as e:
            reason = "truncated" if index >= 0 else "unreadable"
            raise RejectedInput(reason, f"{path.name}: decoding failed after {index + 1} frames: {e}") from None
        except (ValueError, MemoryError, EOFError) as e:
            raise RejectedInput("unreadable", f"{path.name}: decoding failed after {index + 1} frames: {e}") from None
        if index < 0:
            raise RejectedInput("unreadable", f"{path.name}: the video stream decoded to no frames")
        if last_wanted is not None and index < last_wanted:
            raise RejectedInput(
                "truncated",
                f"{path.name}: the stream announces {expected} frames but decoding stopped after {index + 1}",
            )


# --------------------------------------------------------------------------------------------
# DICOM (pydicom)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _read_dicom(path: Path, sampling: VideoSampling, max_pixels: int | None) -> Iterator[tuple[int, np.ndarray]]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import convert_color_space, get_decoder

    preamble = _has_dicm_preamble(path)
    # force=True only when the name says DICOM but the preamble is missing (old or raw exports);
    # forcing everything would "parse" any file into an empty dataset.
    force = not preamble and path.suffix.lower() in DICOM_EXTS
    try:
        # defer_size keeps big values (the pixels) on disk until they are decoded.
        ds = pydicom.dcmread(path, force=force, defer_size="256 KB")
        has_pixels = any(k in ds for k in _PIXEL_KEYWORDS)
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if not preamble and ts is None and not has_pixels and "SOPClassUID" not in ds:
            raise RejectedInput("unreadable", f"{path.name}: not a DICOM file (no preamble, no DICOM elements)")
    except RejectedInput:
        raise
    except InvalidDicomError as e:
        raise RejectedInput("unreadable", f"{path.name}: not a DICOM file: {e}") from None
    except Exception as e:  # pydicom raises many types on damaged headers; none may escape
        raise RejectedInput("unreadable", f"{path.name}: cannot parse DICOM header: {type(e).__name__}: {e}") from None

    if not has_pixels:
        raise RejectedInput("no_pixel_data", f"{path.name}: DICOM dataset has no PixelData element")
    if "PixelData" not in ds:
        raise RejectedInput("unsupported", f"{path.name}: floating-point DICOM pixel data is not supported")
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError) as e:
        raise RejectedInput("unreadable", f"{path.name}: invalid Rows/Columns: {e}") from None
    _check_pixels(path, columns, rows, max_pixels, "DICOM image (Rows x Columns)")
    if ts is None:
        # A headerless (forced) dataset: pydicom's default for raw datasets.
        ts = pydicom.uid.ImplicitVRLittleEndian
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    ts = pydicom.uid.UID(str(ts))
    ts_name = ts.name if ts.is_valid else str(ts)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise RejectedInput("unsupported", f"{path.name}: transfer syntax '{ts_name}' has no pixel decoder") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise RejectedInput(
            "unsupported", f"{path.name}: transfer syntax '{ts_name}' needs a decoder that is not installed ({missing})"
        )

    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    except (TypeError, ValueError) as e:
        raise RejectedInput("unreadable", f"{path.name}: invalid image attributes: {e}") from None
    indices = sampling.indices(n_frames) if n_frames > 1 else [0]

    frames: list[tuple[int, np.ndarray]] = []
    try:
        # as_rgb converts compressed YBR to RGB in the decoder; native YBR is converted below.
        for i, (arr, overrides) in zip(indices, decoder.iter_array(ds, indices=indices, as_rgb=True), strict=True):
            pi = str(overrides.get("photometric_interpretation", photometric)).upper()
            if pi.startswith("YBR_FULL") and arr.ndim == 3:
                arr = convert_color_space(arr, pi, "RGB")
            elif pi == "MONOCHROME1":
                # MONOCHROME1 means "0 is white": invert within the stored bit range so that, as in
                # every other input, bright tissue is a high value.
                if signed:
                    arr = (-1 - arr.astype(np.int64)).astype(arr.dtype)
                else:
                    top = (1 << min(bits_stored, arr.dtype.itemsize * 8)) - 1
                    arr = (top - np.minimum(arr, top)).astype(arr.dtype)
            elif pi not in ("MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", ""):
                raise RejectedInput("unsupported", f"{path.name}: PhotometricInterpretation '{pi}' is not supported")
            if arr.dtype.kind not in "ui":
                raise RejectedInput("unsupported", f"{path.name}: pixel type {arr.dtype} is not supported")
            frames.append((i, np.ascontiguousarray(arr)))
    except RejectedInput:
        raise
    except (EOFError, ValueError) as e:
        msg = str(e)
        reason = "truncated" if ("end of" in msg.lower() or "insufficient" in msg.lower() or isinstance(e, EOFError)) else "unreadable"
        raise RejectedInput(reason, f"{path.name}: cannot decode DICOM pixel data: {msg}") from None
    except Exception as e:  # decoder plugins raise assorted types; convert them all
        raise RejectedInput("unreadable", f"{path.name}: cannot decode DICOM pixel data: {type(e).__name__}: {e}") from None
    yield from frames
