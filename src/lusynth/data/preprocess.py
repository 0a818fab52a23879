"""Frame preprocessing: decoded pixels -> grey uint8 square frame of the configured size.

Pure: arrays in, arrays out, no IO. The steps, in order (:func:`prepare_frame`):

1. :func:`to_grey_uint8` - any decoded layout (grey, RGB, RGBA; 8/16-bit or other ints) to 2-D uint8;
2. reject frames too small to be worth a sample, and frames with no signal at all;
3. :func:`to_square` - centre crop (default) or centre pad with black;
4. :func:`resize` - area-like downscale to ``size x size``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lusynth.errors import RejectedInput

SQUARE_MODES = ("crop", "pad")
# ITU-R BT.601 luma weights, as integers over 1000 (PIL's "L" conversion uses the same weights).
_LUMA_601 = (299, 587, 114)


def _full_scale(values: np.ndarray) -> int:
    """The smallest 2**b - 1 >= max(values), with b >= 8: the value that maps to white.

    Why this and not a per-frame min/max stretch: a 12-bit clip stored in 16-bit words is divided
    by 4095 in every frame, so a dark frame stays dark and intensities stay comparable across the
    frames of a clip and across clips from the same device. Values that already fit in 8 bits
    (b = 8) are kept as they are.
    """
    top = int(values.max()) if values.size else 0
    return (1 << max(8, top.bit_length())) - 1


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) integer array in the input's own range (uint8 in, uint8 out; else float64)."""
    if rgb.dtype == np.uint8:
        # PIL's "L" conversion is BT.601 in 16-bit fixed point with rounding
        # ((19595 R + 38470 G + 7471 B + 2**15) >> 16), in C: ~1.5x faster than numpy integers.
        return np.array(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))  # a writable copy
    wr, wg, wb = _LUMA_601
    rgbf = rgb.astype(np.float64)
    return (rgbf[..., 0] * wr + rgbf[..., 1] * wg + rgbf[..., 2] * wb) / 1000.0


def to_grey_uint8(arr: np.ndarray) -> np.ndarray:
    """Any decoded frame to a 2-D uint8 grey frame.

    - (H, W) grey, (H, W, 1), (H, W, 2) grey+alpha, (H, W, 3) RGB, (H, W, 4) RGBA;
    - RGB -> ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B);
    - alpha composites the frame on black (transparent = 0; alpha full scale = its dtype's max);
    - uint8 is kept; 16-bit and other integers are divided by the smallest 2**b - 1 >= the max of
      the colour values (b >= 8), which keeps relative intensities and does not stretch each
      frame; negative values (signed DICOM) have no meaning in ultrasound and become 0.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype.kind not in "ui":
        raise TypeError(f"to_grey_uint8: expected an integer pixel array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        colour, alpha = arr, None
    elif arr.ndim == 3 and arr.shape[2] in (2, 3, 4):
        channels = arr.shape[2]
        colour = arr[..., :1][..., 0] if channels == 2 else arr[..., :3]
        alpha = arr[..., -1] if channels in (2, 4) else None
    else:
        raise ValueError(f"to_grey_uint8: expected (H, W) or (H, W, 1|2|3|4) pixels, got shape {arr.shape}")
    if colour.dtype.kind == "i":
        colour = np.maximum(colour, 0)

    if arr.dtype == np.uint8:
        grey = colour if colour.ndim == 2 else _luma(colour)
        if alpha is None:
            return np.ascontiguousarray(grey)
        # value * alpha / 255 with rounding, in integers
        return ((grey.astype(np.uint32) * alpha + 127) // 255).astype(np.uint8)

    # 16-bit and other integers: luma and compositing in floats, then one scale to uint8.
    grey_f = colour.astype(np.float64) if colour.ndim == 2 else _luma(colour)
    if alpha is not None:
        grey_f = grey_f * np.clip(alpha.astype(np.float64) / np.iinfo(arr.dtype).max, 0.0, 1.0)
    scale = 255.0 / _full_scale(colour)
    return np.clip(np.rint(grey_f * scale), 0, 255).astype(np.uint8)


def to_square(frame: np.ndarray, mode: str = "crop") -> np.ndarray:
    """A square 2-D frame: "crop" keeps the centred min(H, W) square; "pad" centres it on black.

    With an odd difference the extra row/column goes to the bottom/right (crop drops it there,
    pad adds it there).
    """
    if mode not in SQUARE_MODES:
        raise ValueError(f"to_square: mode={mode!r} is not one of {SQUARE_MODES}")
    if frame.ndim != 2:
        raise ValueError(f"to_square: expected a 2-D frame, got shape {frame.shape}")
    h, w = frame.shape
    if h == w:
        return frame
    if mode == "crop":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return np.ascontiguousarray(frame[top : top + s, left : left + s])
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    return np.pad(frame, ((top, s - h - top), (left, s - w - left)), mode="constant", constant_values=0)


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 frame to ``size x size`` with PIL's Lanczos filter (deterministic).

    ``reducing_gap=2.0`` first box-reduces by an integer factor, then applies Lanczos: area-like
    averaging when downscaling (no aliasing of speckle), and a smooth filter when upscaling.
    """
    if frame.ndim != 2 or frame.shape[0] != frame.shape[1]:
        raise ValueError(f"resize: expected a square 2-D frame (call to_square first), got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise TypeError(f"resize: expected uint8 pixels (call to_grey_uint8 first), got {frame.dtype}")
    if size < 1:
        raise ValueError(f"resize: size must be >= 1, got {size}")
    if frame.shape[0] == size:
        return np.ascontiguousarray(frame)
    im = Image.fromarray(np.ascontiguousarray(frame))  # 2-D uint8 -> mode "L"
    out = im.resize((size, size), resample=Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(out, dtype=np.uint8).copy()


def prepare_frame(arr: np.ndarray, *, size: int, square: str = "crop", min_side: int = 32) -> np.ndarray:
    """Decoded pixels -> (size, size) uint8 grey frame, or RejectedInput.

    Raises RejectedInput("too_small", ...) when min(H, W) < ``min_side`` and
    RejectedInput("blank_frame", "all pixels are 0") when the grey frame is entirely black.
    """
    if arr.ndim not in (2, 3):
        raise ValueError(f"prepare_frame: expected (H, W) or (H, W, C) pixels, got shape {arr.shape}")
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise RejectedInput("too_small", f"frame is {w}x{h} pixels; at least {min_side} on the short side is needed")
    grey = to_grey_uint8(arr)
    if not grey.any():
        raise RejectedInput("blank_frame", "all pixels are 0")
    return resize(to_square(grey, square), size)
