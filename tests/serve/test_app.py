"""The HTTP service over real HTTP: predictions match the model, bad uploads get clear 4xx answers."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from lusynth.classifier.train import load_classifier
from lusynth.data.framestore import open_store
from lusynth.serve import create_app
from tests.serve.conftest import bomb_png, png, running


@pytest.fixture(scope="module")
def setup(classifier_onnx: tuple[Path, Path]) -> Iterator[tuple[str, Path, np.ndarray]]:
    root, onnx_path = classifier_onnx
    store = open_store(root / "real")
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


def test_decompression_bomb_beyond_pils_own_guard_is_413_not_422(setup: tuple[str, Path, np.ndarray]) -> None:
    url, _, frames = setup
    bomb = bomb_png()  # 110 KB declaring 30000x30000 = 900 Mpx: PIL refuses it in Image.open already
    assert len(bomb) < 200_000
    for r in (httpx.post(f"{url}/predict", files=[("files", ("bomb.png", bomb, "image/png"))]),
              httpx.post(f"{url}/predict", content=bomb, headers={"content-type": "image/png"})):
        assert r.status_code == 413, r.text
        assert "bomb.png" in r.text or "body" in r.text
    assert httpx.post(f"{url}/predict", content=png(frames[0]), headers={"content-type": "image/png"}).status_code == 200


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_metadata_and_predictions_expose_no_server_paths(setup: tuple[str, Path, np.ndarray]) -> None:
    url, root, frames = setup
    meta = httpx.get(f"{url}/metadata").json()
    pred = httpx.post(f"{url}/predict", content=png(frames[0]), headers={"content-type": "image/png"}).json()
    for doc in (meta, pred):
        text = json.dumps(doc)
        assert str(root) not in text and "/tmp" not in text
        for s in _strings(doc):
            assert not re.search(r"(^|[\s\"'=:])/[\w.-]+/", s), s
    assert meta["source"] == "clf.onnx" and pred["model"]["source"] == "clf.onnx"
    assert meta["model_metadata"]["lusynth.store_digests"] == [meta["model_metadata"]["lusynth.data_digest"]]
    assert meta["max_image_pixels"] == 16 * 64 * 64 and meta["limits"]["max_connections"] >= 1


def test_missing_or_foreign_model_is_a_clear_error(tmp_path: Path, setup: tuple[str, Path, np.ndarray]) -> None:
    from lusynth.errors import InputError

    with pytest.raises(InputError, match="no such model file"):
        create_app(tmp_path / "nope.onnx")
