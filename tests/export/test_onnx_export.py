"""ONNX export: the graph does the preprocessing, matches PyTorch, carries metadata, fails loudly."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lusynth.classifier.train import load_classifier
from lusynth.data.framestore import open_store
from lusynth.export.onnx_export import (
    CLASSIFIER_TOLERANCE,
    ClassifierForServing,
    ExportParityError,
    check_parity,
    export_classifier,
    export_generator,
    ort_session,
    parity_frames,
    read_metadata,
)
from lusynth.gan.checkpoint import load_generator
from lusynth.gan.step import sample_frames
from tests.export import real_store, train_tiny_classifier, write_gan_dir


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    train_tiny_classifier(real_store(root), root / "clf")
    write_gan_dir(root / "gan", label="consolidation", fraction=0.5)
    return root


def test_classifier_graph_takes_raw_uint8_frames_and_matches_the_trained_pipeline(work: Path) -> None:
    res = export_classifier(work / "clf", work / "clf.onnx")
    assert res.exporter in ("dynamo", "torchscript") and res.max_abs_diff <= CLASSIFIER_TOLERANCE
    model = onnx.load(str(res.path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inp = model.graph.input[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert inp.type.tensor_type.shape.dim[0].dim_value == 0  # symbolic (dynamic) batch axis
    # the ONNX graph on real holdout frames == LoadedClassifier.predict_proba (to_float + standardize in torch)
    store = open_store(work / "real")
    frames = np.asarray(store.frames[store.indices(split="holdout")][:37])
    clf = load_classifier(work / "clf")
    sess = ort_session(res.path)
    probs = sess.run(None, {"frames": frames})[0]
    assert probs.shape == (37, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probs[:, 1], clf.predict_proba(frames), atol=CLASSIFIER_TOLERANCE)


def test_classifier_metadata_names_classes_size_preprocessing_and_data(work: Path) -> None:
    res = export_classifier(work / "clf", work / "clf-ts.onnx", prefer_dynamo=False)
    assert res.exporter == "torchscript"
    meta = read_metadata(res.path)
    clf = load_classifier(work / "clf")
    assert meta["lusynth.classes"] == '["no_consolidation", "consolidation"]'
    assert meta["lusynth.image_size"] == "64" and meta["lusynth.kind"] == "classifier"
    assert "standardize" in meta["lusynth.preprocessing"]
    assert meta["lusynth.data_digest"] == clf.meta["data"]["real_digest"] == open_store(work / "real").digest
    assert meta["lusynth.version"] and meta["lusynth.arm"] == "real"


def test_generator_graph_maps_latents_to_the_same_uint8_frames_as_sample_frames(work: Path) -> None:
    res = export_generator(work / "gan", work / "gen.onnx")
    meta = read_metadata(res.path)
    assert meta["lusynth.label"] == "consolidation" and meta["lusynth.nz"] == "16"
    g, cfg = load_generator(work / "gan")
    z = torch.randn(5, cfg.nz, generator=torch.Generator().manual_seed(1))
    ref = sample_frames(g, z.view(5, cfg.nz, 1, 1))
    got = ort_session(res.path).run(None, {"z": z.numpy()})[0]
    assert got.dtype == np.uint8 and got.shape == (5, 64, 64)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_parity_failure_raises_with_the_difference_and_writes_nothing(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = export_classifier(work / "clf", work / "p.onnx", prefer_dynamo=False)
    sess = ort_session(good.path)
    clf = load_classifier(work / "clf")
    perturbed = ClassifierForServing(clf.model).eval()
    with torch.no_grad():
        perturbed.model.head.bias[1] += 0.5  # a model that no longer matches the exported graph
    with pytest.raises(ExportParityError, match="tolerance") as exc:
        check_parity(sess, perturbed, parity_frames(64), kind="classifier")
    assert exc.value.max_diff > CLASSIFIER_TOLERANCE

    import lusynth.export.onnx_export as ox

    real_check = ox.check_parity
    monkeypatch.setattr(ox, "check_parity", lambda s, m, b, kind: real_check(s, perturbed, b, kind=kind))
    with pytest.raises(ExportParityError):
        export_classifier(work / "clf", work / "never.onnx", prefer_dynamo=False)
    assert not (work / "never.onnx").exists()


def test_opset_below_17_is_refused(work: Path) -> None:
    from lusynth.export.onnx_export import ExportError

    with pytest.raises(ExportError, match="opset"):
        export_classifier(work / "clf", work / "x.onnx", opset=13)
