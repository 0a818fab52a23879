"""The HTTP service over real HTTP: predictions match the model, bad uploads get clear 4xx answers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from lusynth.classifier import load_classifier
from lusynth.data.framestore import open_store
from lusynth.export import export_classifier
from lusynth.serve import create_app
from tests.export import real_store, train_tiny_classifier
from tests.serve.conftest import running


def png(frame: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("serve")
    real = real_store(root)
    train_tiny_classifier(real, root / "clf")
    onnx_path = export_classifier(root / "clf", root / "clf.onnx", prefer_dynamo=False).path
    store = open_store(real)
    frames = np.asarray(store.frames[store.indices(split="holdout")][:6])
    app = create_app(onnx_path, max_upload_bytes=200_000, max_batch=4)
    with running(app) as url:
        yield url, root, frames


def test_health_and_metadata(setup: tuple[str, Path, np.ndarray]) -> None:
    url, _, _ = setup
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "model_loaded": True}
    meta = httpx.get(f"{url}/metadata").json()
    assert meta["classes"] == ["no_consolidation", "consolidation"] and meta["image_size"] == 64
    assert len(meta["sha256"]) == 64 and meta["max_batch"] == 4


def test_predict_single_and_batch_match_the_pytorch_classifier(setup: tuple[str, Path, np.ndarray]) -> None:
    url, root, frames = setup
    expected = load_classifier(root / "clf").predict_proba(frames)
    one = httpx.post(f"{url}/predict", content=png(frames[0]), headers={"content-type": "image/png"})
    assert one.status_code == 200, one.text
    p = one.json()["predictions"][0]
    assert p["positive_probability"] == pytest.approx(expected[0], abs=1e-4)
    assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    files = [("files", (f"f{i}.png", png(f), "image/png")) for i, f in enumerate(frames[:4])]
    batch = httpx.post(f"{url}/predict", files=files)
    assert batch.status_code == 200, batch.text
    got = [q["positive_probability"] for q in batch.json()["predictions"]]
    assert [q["file"] for q in batch.json()["predictions"]] == ["f0.png", "f1.png", "f2.png", "f3.png"]
    np.testing.assert_allclose(got, expected[:4], atol=1e-4)
    # JPEG is accepted too (lossy: the answer is a valid probability, not the PNG's)
    jpg = httpx.post(f"{url}/predict", files=[("files", ("a.jpg", png(frames[0], "JPEG"), "image/jpeg"))])
    assert jpg.status_code == 200 and 0 <= jpg.json()["predictions"][0]["positive_probability"] <= 1


@pytest.mark.parametrize("case", ["not_image", "wrong_size", "truncated", "empty", "too_many", "too_big", "bad_ctype", "gif", "no_files"])
def test_bad_uploads_get_4xx_with_a_message_and_the_service_stays_up(setup: tuple[str, Path, np.ndarray], case: str) -> None:
    url, _, frames = setup
    good = png(frames[0])
    if case == "not_image":
        r = httpx.post(f"{url}/predict", files=[("files", ("x.png", b"%PDF-1.4 not an image", "image/png"))])
        want = 415
    elif case == "wrong_size":
        r = httpx.post(f"{url}/predict", files=[("files", ("big.png", png(np.zeros((80, 64), np.uint8)), "image/png"))])
        want = 422
    elif case == "truncated":
        r = httpx.post(f"{url}/predict", files=[("files", ("cut.png", good[: len(good) // 2], "image/png"))])
        want = 422
    elif case == "empty":
        r = httpx.post(f"{url}/predict", content=b"", headers={"content-type": "image/png"})
        want = 422
    elif case == "too_many":
        r = httpx.post(f"{url}/predict", files=[("files", (f"{i}.png", good, "image/png")) for i in range(5)])
        want = 413
    elif case == "too_big":
        r = httpx.post(f"{url}/predict", content=b"\x89PNG" + b"0" * 300_000, headers={"content-type": "image/png"})
        want = 413
    elif case == "bad_ctype":
        r = httpx.post(f"{url}/predict", content=good, headers={"content-type": "text/plain"})
        want = 415
    elif case == "gif":
        buf = io.BytesIO()
        Image.fromarray(frames[0]).save(buf, format="GIF")
        r = httpx.post(f"{url}/predict", files=[("files", ("a.gif", buf.getvalue(), "image/gif"))])
        want = 415
    else:
        r = httpx.post(f"{url}/predict", data={"note": "no file"}, files=[])
        want = 415 if "multipart" not in r.request.headers.get("content-type", "") else 422
    assert r.status_code == want, r.text
    assert r.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200
    ok = httpx.post(f"{url}/predict", content=good, headers={"content-type": "image/png"})
    assert ok.status_code == 200


def test_decompression_bomb_is_refused_before_decoding(setup: tuple[str, Path, np.ndarray]) -> None:
    url, _, _ = setup
    bomb = png(np.zeros((2000, 2000), np.uint8))  # compresses to a few KB, 4 Mpx once decoded
    assert len(bomb) < 200_000
    r = httpx.post(f"{url}/predict", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 413 and "far above" in r.json()["error"]


def test_missing_or_foreign_model_is_a_clear_error(tmp_path: Path, setup: tuple[str, Path, np.ndarray]) -> None:
    from lusynth.errors import InputError

    with pytest.raises(InputError, match="no such model file"):
        create_app(tmp_path / "nope.onnx")
