"""The paper's separable-conv classifier: block rule, channels and shapes."""

import pytest
import torch

from lusynth.models.classifier import ClassifierConfig, FrameClassifier, n_blocks


@pytest.mark.parametrize(("size", "blocks", "final"), [(64, 3, 4), (128, 5, 1), (256, 6, 1)])
def test_block_count_follows_input_size(size: int, blocks: int, final: int) -> None:
    model = FrameClassifier(ClassifierConfig(image_size=size, width=3))
    assert n_blocks(size) == blocks
    assert model.final_size == final
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 2)


def test_paper_network_at_256_has_the_papers_channels_and_layers() -> None:
    m = 5
    model = FrameClassifier(ClassifierConfig(image_size=256, width=m))
    assert model.config.channels == (4 * m, 8 * m, 16 * m, 32 * m, 64 * m, 64 * m)
    shapes = dict(model.layer_shapes())
    convs = [s for name, s in model.layer_shapes() if "SeparableConv2d" in name]
    assert len(convs) == 10  # 2+2+2+2+1+1 separable convs
    assert convs[0] == (1, 4 * m, 254, 254)  # valid padding
    assert shapes["pool"] == (1, 64 * m) and shapes["head"] == (1, 2)


def test_embed_returns_pooled_features() -> None:
    model = FrameClassifier(ClassifierConfig(image_size=64, width=3)).eval()
    x = torch.rand(3, 1, 64, 64)
    e = model.embed(x)
    assert e.shape == (3, model.config.embed_dim) == (3, 48)
    torch.testing.assert_close(model.head(e), model(x))  # eval mode: head dropout is off


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="width"):
        ClassifierConfig(width=0)
    with pytest.raises(ValueError, match="dropout"):
        ClassifierConfig(dropout=1.0)
