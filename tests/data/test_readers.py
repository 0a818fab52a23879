"""Readers: every corpus file is decoded or rejected with the right reason; sampling; DICOM; real clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lusynth.data.ingest import IngestParams
from lusynth.data.preprocess import prepare_frame
from lusynth.data.readers import VideoSampling, input_kind, read_frames
from lusynth.errors import RejectedInput
from tests.data.corpus import (
    DICOM_FRAMES,
    DICOM_PHI,
    PREPROCESS_REJECTS,
    VIDEO_FRAMES,
    H,
    W,
    _pattern,
    _rgb_pattern,
    build_bad_input_corpus,
)

EVERY_FRAME = VideoSampling(mode="every", step=1, max_frames=10_000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_bad_input_corpus(root)


def _corpus_names() -> list[str]:
    # Built once at collection in a throwaway dir, only to parametrise by file name.
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return sorted(build_bad_input_corpus(Path(d)))


CORPUS_NAMES = _corpus_names()
MAX_PIXELS = IngestParams().max_pixels


def test_corpus_covers_every_reason(corpus) -> None:
    reasons = set(corpus[1].values())
    assert {None, "zero_bytes", "blank_frame", "unreadable", "truncated", "unsupported_extension", "no_pixel_data", "too_small",
            "too_many_pixels"} <= reasons


@pytest.mark.parametrize("rel", CORPUS_NAMES)
def test_corpus_file_is_decoded_or_rejected_with_its_reason(corpus, rel: str) -> None:
    root, expected = corpus
    reason = expected[rel]
    path = root / rel
    if reason is None or rel in PREPROCESS_REJECTS:
        frames = list(read_frames(path, max_pixels=MAX_PIXELS))
        assert frames, f"{rel}: accepted file yielded no frames"
        for index, arr in frames:
            assert isinstance(index, int) and index >= 0
            assert isinstance(arr, np.ndarray)
            assert arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)), arr.shape
            assert arr.dtype.kind in "ui"
        if reason is None:
            out = [prepare_frame(a, size=32) for _, a in frames]
            assert all(o.shape == (32, 32) and o.dtype == np.uint8 for o in out)
        else:
            with pytest.raises(RejectedInput) as exc:
                for _, arr in frames:
                    prepare_frame(arr, size=32)
            assert exc.value.reason == reason
    else:
        with pytest.raises(RejectedInput) as exc:
            list(read_frames(path, max_pixels=MAX_PIXELS))
        assert exc.value.reason == reason, exc.value.detail
        assert path.name in exc.value.detail  # the report names the file


def test_input_kind_by_extension_and_preamble(corpus) -> None:
    root, _ = corpus
    assert input_kind(Path("a/b.PNG")) == "image"
    assert input_kind(Path("x.tiff")) == "image"
    assert input_kind(Path("clip.MOV")) == "video"
    assert input_kind(Path("clip.gif")) == "video"
    assert input_kind(Path("img.dcm")) == "dicom"
    assert input_kind(Path("IM000001")) == "dicom"
    assert input_kind(Path("notes.txt")) is None
    # DICOM by its preamble, whatever the name says.
    renamed = root / "renamed_dicom.bin"
    renamed.write_bytes((root / "dicom/single.dcm").read_bytes())
    assert input_kind(renamed) == "dicom"
    assert [i for i, _ in read_frames(renamed)] == [0]


def test_video_sampling_validates_with_actionable_messages() -> None:
    with pytest.raises(ValueError, match="mode"):
        VideoSampling(mode="random")
    with pytest.raises(ValueError, match="step"):
        VideoSampling(step=0)
    with pytest.raises(ValueError, match="max_frames"):
        VideoSampling(max_frames=-1)
    with pytest.raises(ValueError, match="frames"):
        VideoSampling(frames=2.5)  # type: ignore[arg-type]


def test_sampling_indices() -> None:
    assert VideoSampling(frames=5).indices(101) == [0, 25, 50, 75, 100]
    assert VideoSampling(frames=8).indices(3) == [0, 1, 2]  # never more than the clip has
    assert VideoSampling(frames=1).indices(50) == [0]
    assert VideoSampling(frames=100, max_frames=4).indices(1000) == [0, 333, 666, 999]
    assert VideoSampling(mode="every", step=3).indices(10) == [0, 3, 6, 9]
    assert VideoSampling(mode="every", step=2, max_frames=3).indices(100) == [0, 2, 4]
    assert VideoSampling().indices(0) == []


def test_a_clip_gives_32_frames_by_default_and_8_in_the_test_profile() -> None:
    """The default frames per clip (ingest.video_frames = VideoSampling.frames) is 32, spread over the
    clip with its first and last frame: 8 left the GANs on the real clips too few frames to learn
    from (benchmarks/results/README.md, "Frames per clip"). The tiny profile keeps 8 for speed."""
    from lusynth.params import stage_params

    for sampling in (VideoSampling(), VideoSampling(frames=IngestParams().video_frames),
                     VideoSampling(frames=stage_params("ingest", "demo").video_frames)):
        picked = sampling.indices(311)
        assert len(picked) == 32 and picked[0] == 0 and picked[-1] == 310
        assert max(np.diff(picked)) - min(np.diff(picked)) <= 1  # evenly spread
    assert stage_params("ingest", "tiny").video_frames == 8


@pytest.mark.parametrize("name", ["videos/valid.mp4", "videos/valid.avi"])
def test_video_sampling_picks_the_right_source_frames(corpus, name: str) -> None:
    root, _ = corpus
    path = root / name
    every = list(read_frames(path, sampling=EVERY_FRAME))
    assert [i for i, _ in every] == list(range(VIDEO_FRAMES))
    by_index = dict(every)

    even = list(read_frames(path, sampling=VideoSampling(mode="even", frames=6)))
    idx = [i for i, _ in even]
    assert len(idx) == 6 and idx[0] == 0 and idx[-1] == VIDEO_FRAMES - 1 and idx == sorted(set(idx))
    for i, arr in even:  # the index names the frame that was actually decoded there
        np.testing.assert_array_equal(arr, by_index[i])

    step = list(read_frames(path, sampling=VideoSampling(mode="every", step=5)))
    assert [i for i, _ in step] == [0, 5, 10, 15, 20]
    capped = list(read_frames(path, sampling=VideoSampling(mode="every", step=5, max_frames=2)))
    assert [i for i, _ in capped] == [0, 5]
    capped_even = list(read_frames(path, sampling=VideoSampling(frames=20, max_frames=3)))
    assert [i for i, _ in capped_even] == [0, 12, 23]


def test_video_pixels_are_the_encoded_content(corpus) -> None:
    root, _ = corpus
    (index, arr), *_ = read_frames(root / "videos/valid.avi", sampling=EVERY_FRAME)
    assert index == 0 and arr.shape == (H, W, 3) and arr.dtype == np.uint8
    # Lossy codecs: compare on average, loose enough for mpeg4 at its default quality.
    assert np.abs(arr.astype(int) - _rgb_pattern(H, W, 0).astype(int)).mean() < 20


def test_even_sampling_without_a_frame_count_in_the_header(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mpg"  # MPEG-PS carries no frame count: the reader must count
    with av.open(str(path), mode="w", format="mpeg") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        for t in range(30):
            frame = av.VideoFrame.from_ndarray(_rgb_pattern(48, 64, t), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    idx = [i for i, _ in read_frames(path, sampling=VideoSampling(frames=4))]
    assert idx == [0, 10, 19, 29]


def test_truncated_clip_may_raise_after_yielding_frames(corpus) -> None:
    """Streaming decode: the caller must drop a file's frames when RejectedInput comes late."""
    root, _ = corpus
    got: list[int] = []
    with pytest.raises(RejectedInput) as exc:
        for i, _ in read_frames(root / "videos/truncated_faststart.mp4", sampling=EVERY_FRAME):
            got.append(i)
    assert exc.value.reason == "truncated"
    assert got == list(range(len(got)))


def test_sixteen_bit_images_round_trip(tmp_path: Path) -> None:
    from PIL import Image

    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 8 % 65536).astype(np.uint16)
    assert values.max() > 255
    for name in ("g16.png", "g16.tif"):
        Image.fromarray(values).save(tmp_path / name)
        [(index, arr)] = list(read_frames(tmp_path / name))
        assert index == 0 and arr.dtype == np.uint16
        np.testing.assert_array_equal(arr, values)


def test_image_modes_are_decoded_as_documented(corpus) -> None:
    root, _ = corpus
    [(_, rgba)] = read_frames(root / "images/rgba.png")
    assert rgba.shape == (H, W, 4) and rgba[:, 0, 3].max() == 0 and rgba[:, -1, 3].min() == 255
    [(_, palette)] = read_frames(root / "images/palette.png")
    assert palette.shape == (H, W, 3)  # palette expanded to RGB
    [(_, bmp)] = read_frames(root / "images/rgb.bmp")
    np.testing.assert_array_equal(bmp, _rgb_pattern(H, W))
    [(_, png)] = read_frames(root / "images/grey.png")
    np.testing.assert_array_equal(png, _pattern(H, W))


def test_grey_alpha_png_becomes_rgba(tmp_path: Path) -> None:
    from PIL import Image

    la = np.dstack([np.full((40, 40), 200, np.uint8), np.full((40, 40), 128, np.uint8)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    [(_, arr)] = read_frames(tmp_path / "la.png")
    assert arr.shape == (40, 40, 4)
    assert (arr[..., :3] == 200).all() and (arr[..., 3] == 128).all()


def test_multipage_tiff_is_sampled_like_a_clip(corpus) -> None:
    root, _ = corpus
    pages = list(read_frames(root / "images/multipage.tif", sampling=VideoSampling(mode="every", step=2)))
    assert [i for i, _ in pages] == [0, 2]
    np.testing.assert_array_equal(pages[1][1], _pattern(H, W, 2))


def test_dicom_multiframe_yields_every_frame(corpus) -> None:
    root, _ = corpus
    frames = list(read_frames(root / "dicom/multiframe.dcm"))
    assert [i for i, _ in frames] == list(range(DICOM_FRAMES))
    for i, arr in frames:
        np.testing.assert_array_equal(arr, _pattern(H, W, i))
    sampled = list(read_frames(root / "dicom/multiframe.dcm", sampling=VideoSampling(frames=3)))
    assert [i for i, _ in sampled] == [0, 2, 4]


def test_dicom_monochrome1_is_inverted(corpus) -> None:
    root, _ = corpus
    [(_, mono2)] = read_frames(root / "dicom/single.dcm")
    [(_, mono1)] = read_frames(root / "dicom/mono1.dcm")
    np.testing.assert_array_equal(mono2, _pattern(H, W))
    np.testing.assert_array_equal(mono1, 255 - _pattern(H, W))


def test_dicom_colour_spaces(corpus) -> None:
    root, _ = corpus
    [(_, rgb)] = read_frames(root / "dicom/rgb.dcm")
    np.testing.assert_array_equal(rgb, _rgb_pattern(H, W))
    [(_, ybr)] = read_frames(root / "dicom/ybr_full.dcm")
    assert ybr.shape == (H, W, 3)
    assert np.abs(ybr.astype(int) - _rgb_pattern(H, W).astype(int)).max() <= 2  # YBR_FULL -> RGB


def test_dicom_without_preamble_is_read_when_named_dcm(corpus) -> None:
    root, _ = corpus
    path = root / "dicom/raw_no_preamble.dcm"
    assert path.read_bytes()[128:132] != b"DICM"
    [(_, arr)] = read_frames(path)
    np.testing.assert_array_equal(arr, _pattern(H, W))
    renamed = root / "raw_no_preamble.png"  # no preamble and not named DICOM: not DICOM
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(RejectedInput) as exc:
        list(read_frames(renamed))
    assert exc.value.reason == "unreadable"


def test_no_dicom_header_value_leaves_the_reader(corpus) -> None:
    root, expected = corpus
    for rel in (r for r in expected if r.startswith("dicom/")):
        try:
            items = list(read_frames(root / rel))
        except RejectedInput as e:
            text = f"{e.reason} {e.detail}"
        else:
            assert all(type(i) is int and type(a) is np.ndarray for i, a in items)
            text = repr([i for i, _ in items])
        for value in DICOM_PHI.values():
            assert value not in text, f"{rel}: header value {value!r} leaked"


def test_zero_byte_file_without_extension_is_zero_bytes(tmp_path: Path) -> None:
    (tmp_path / "IM0001").write_bytes(b"")
    with pytest.raises(RejectedInput) as exc:
        list(read_frames(tmp_path / "IM0001"))
    assert exc.value.reason == "zero_bytes"


# --------------------------------------------------------------------------------------------
# real clips (POCUS subset), skipped when absent


def _pocus_dir() -> Path:
    env = os.environ.get("LUSYNTH_POCUS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pocus"


@pytest.mark.pocus
def test_every_real_clip_decodes_and_prepares() -> None:
    import csv

    root = _pocus_dir()
    if not (root / "clips.csv").is_file():
        pytest.skip(f"POCUS clips not found at {root} (set LUSYNTH_POCUS_DIR)")
    with (root / "clips.csv").open(newline="") as fh:
        files = [row["file"] for row in csv.DictReader(fh)]
    assert files
    kinds = set()
    for rel in files:
        path = root / rel
        kinds.add(path.suffix.lower())
        assert input_kind(path) == "video", rel
        frames = [(i, prepare_frame(a, size=64)) for i, a in read_frames(path, sampling=VideoSampling(frames=3))]
        assert len(frames) >= 1, rel
        assert frames[0][0] == 0
        for _, f in frames:
            assert f.shape == (64, 64) and f.dtype == np.uint8 and f.std() > 1, rel  # real content, not blank
    assert {".avi", ".mp4", ".mpeg", ".mov", ".gif"} <= kinds
