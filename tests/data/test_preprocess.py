"""Preprocess: hand-checked conversions and property tests on shapes and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lusynth.data.preprocess import prepare_frame, resize, to_grey_uint8, to_square
from lusynth.errors import RejectedInput


def _px(*values: int, dtype=np.uint8) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array(values, dtype=dtype).reshape(1, 1, len(values))


def test_luma_uses_bt601_weights() -> None:
    assert to_grey_uint8(_px(255, 0, 0))[0, 0] == 76  # 0.299 * 255 = 76.2
    assert to_grey_uint8(_px(0, 255, 0))[0, 0] == 150  # 0.587 * 255 = 149.7
    assert to_grey_uint8(_px(0, 0, 255))[0, 0] == 29  # 0.114 * 255 = 29.1
    assert to_grey_uint8(_px(10, 20, 30))[0, 0] == 18  # 2.99 + 11.74 + 3.42 = 18.15
    assert to_grey_uint8(_px(255, 255, 255))[0, 0] == 255
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(to_grey_uint8(np.dstack([grey] * 3)), grey)  # grey RGB stays grey


def test_rgba_is_composited_on_black() -> None:
    assert to_grey_uint8(_px(200, 200, 200, 255))[0, 0] == 200
    assert to_grey_uint8(_px(200, 200, 200, 128))[0, 0] == 100  # 200 * 128 / 255 = 100.4
    assert to_grey_uint8(_px(255, 255, 255, 0))[0, 0] == 0
    assert to_grey_uint8(_px(200, 100, dtype=np.uint8))[0, 0] == 78  # grey + alpha: 200 * 100 / 255
    assert to_grey_uint8(_px(4095, 4095, 4095, 32768, dtype=np.uint16))[0, 0] == 128  # half alpha, 12-bit white


def test_sixteen_bit_is_scaled_by_its_bit_depth_not_stretched() -> None:
    twelve_bit = np.array([[0, 2048, 4095]], dtype=np.uint16)
    np.testing.assert_array_equal(to_grey_uint8(twelve_bit), [[0, 128, 255]])  # / 4095
    dark_twelve_bit = np.array([[0, 1024, 3000]], dtype=np.uint16)  # max < 4095 but > 2047
    np.testing.assert_array_equal(to_grey_uint8(dark_twelve_bit), [[0, 64, 187]])  # still / 4095
    full = np.array([[0, 257, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(to_grey_uint8(full), [[0, 1, 255]])  # / 65535
    eight_bit_in_16 = np.array([[0, 17, 200]], dtype=np.uint16)
    np.testing.assert_array_equal(to_grey_uint8(eight_bit_in_16), [[0, 17, 200]])  # kept as is
    signed = np.array([[-1000, 0, 255]], dtype=np.int16)
    np.testing.assert_array_equal(to_grey_uint8(signed), [[0, 0, 255]])
    rgb16 = np.zeros((1, 1, 3), np.uint16)
    rgb16[..., 0] = 4095
    assert to_grey_uint8(rgb16)[0, 0] == 76  # luma of 12-bit red, on the 12-bit scale


def test_to_grey_rejects_bad_inputs() -> None:
    with pytest.raises(TypeError, match="integer"):
        to_grey_uint8(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_grey_uint8(np.zeros((4, 4, 5), np.uint8))


def test_crop_keeps_the_centre_with_odd_differences() -> None:
    frame = np.arange(5 * 8, dtype=np.uint8).reshape(5, 8)
    out = to_square(frame, "crop")
    np.testing.assert_array_equal(out, frame[:, 1:6])  # (8 - 5) // 2 = 1 column dropped left, 2 right
    tall = np.arange(7 * 4, dtype=np.uint8).reshape(7, 4)
    np.testing.assert_array_equal(to_square(tall, "crop"), tall[1:5, :])


def test_pad_centres_on_black_with_odd_differences() -> None:
    frame = np.full((2, 5), 9, np.uint8)
    out = to_square(frame, "pad")
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out[1:3], frame)  # (5 - 2) // 2 = 1 row above, 2 below
    assert (out[0] == 0).all() and (out[3:] == 0).all()
    square = np.ones((3, 3), np.uint8)
    np.testing.assert_array_equal(to_square(square, "pad"), square)
    with pytest.raises(ValueError, match="mode"):
        to_square(frame, "stretch")


@pytest.mark.parametrize(("side", "size"), [(256, 64), (300, 256), (517, 128), (40, 64), (64, 64)])
def test_resize_shape_dtype_and_constant_stays_constant(side: int, size: int) -> None:
    for value in (0, 1, 137, 255):
        out = resize(np.full((side, side), value, np.uint8), size)
        assert out.shape == (size, size) and out.dtype == np.uint8
        assert (out == value).all()


def test_resize_is_deterministic_and_averages() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (256, 256), dtype=np.uint8)
    a, b = resize(frame, 64), resize(frame, 64)
    np.testing.assert_array_equal(a, b)
    # Area-like: a checkerboard averages to mid-grey instead of aliasing to black or white.
    checker = (np.indices((256, 256)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = resize(checker, 64)
    assert np.abs(out.astype(int) - 128).max() <= 2
    with pytest.raises(ValueError, match="square"):
        resize(np.zeros((10, 12), np.uint8), 8)


def test_prepare_frame_rejects_small_and_black_frames() -> None:
    with pytest.raises(RejectedInput) as exc:
        prepare_frame(np.full((31, 100), 50, np.uint8), size=64)
    assert exc.value.reason == "too_small"
    assert prepare_frame(np.full((32, 100), 50, np.uint8), size=64).shape == (64, 64)
    with pytest.raises(RejectedInput) as exc:
        prepare_frame(np.zeros((64, 64, 3), np.uint8), size=64)
    assert (exc.value.reason, exc.value.detail) == ("blank_frame", "all pixels are 0")
    with pytest.raises(RejectedInput) as exc:  # fully transparent is black too
        prepare_frame(np.dstack([np.full((64, 64, 3), 255, np.uint8), np.zeros((64, 64), np.uint8)]), size=64)
    assert exc.value.reason == "blank_frame"


def test_prepare_frame_crop_and_pad_differ_as_expected() -> None:
    frame = np.full((64, 128), 200, np.uint8)
    np.testing.assert_array_equal(prepare_frame(frame, size=32, square="crop"), np.full((32, 32), 200, np.uint8))
    padded = prepare_frame(frame, size=32, square="pad")
    assert padded[16, 16] == 200 and padded[0, 16] == 0 and padded[-1, 16] == 0


_sides = st.integers(min_value=32, max_value=96)


@st.composite
def _frames(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    h, w = draw(_sides), draw(_sides)
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (h, w) if channels is None else (h, w, channels)
    arr = draw(arrays(dtype, shape, elements=st.integers(0, int(np.iinfo(dtype).max))))
    arr.flat[0] = np.iinfo(dtype).max  # at least one bright pixel: the frame is not empty
    if channels == 4:
        arr[..., 3].flat[0] = np.iinfo(dtype).max
    return arr


@settings(max_examples=60, deadline=None)
@given(arr=_frames(), size=st.sampled_from([32, 64, 100]), square=st.sampled_from(["crop", "pad"]))
def test_any_frame_becomes_size_square_uint8(arr: np.ndarray, size: int, square: str) -> None:
    out = prepare_frame(arr, size=size, square=square)
    assert out.shape == (size, size) and out.dtype == np.uint8 and out.flags.c_contiguous


@settings(max_examples=60, deadline=None)
@given(arr=_frames())
def test_grey_keeps_the_spatial_shape(arr: np.ndarray) -> None:
    out = to_grey_uint8(arr)
    assert out.shape == arr.shape[:2] and out.dtype == np.uint8
