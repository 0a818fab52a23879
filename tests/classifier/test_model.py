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


@pytest.mark.parametrize("size", [64, 128])
def test_fast_cpu_network_is_the_stock_network(size: int) -> None:
    """fast_cpu swaps BatchNorm and dropout for the CPU kernels: the same state dict, the same
    eval function bit for bit (inference and export), and in training (dropout off) the same
    outputs, gradients and running statistics as the stock network, to float rounding (checked
    against a float64 copy of the stock network)."""
    import copy

    from lusynth.models.fastcpu import FastBatchNorm2d, FastDropout

    torch.manual_seed(0)
    stock = FrameClassifier(ClassifierConfig(image_size=size, width=3, dropout=0.0, fast_cpu=False))
    fast = FrameClassifier(ClassifierConfig(image_size=size, width=3, dropout=0.0))
    assert any(isinstance(m, FastBatchNorm2d) for m in fast.modules()) and any(isinstance(m, FastDropout) for m in fast.modules())
    assert not any(isinstance(m, (FastBatchNorm2d, FastDropout)) for m in stock.modules())
    fast.load_state_dict(stock.state_dict())
    assert list(fast.state_dict()) == list(stock.state_dict())
    ref = copy.deepcopy(stock).double()
    x = torch.randn(8, 1, size, size).contiguous(memory_format=torch.channels_last)
    stock, fast = (m.to(memory_format=torch.channels_last) for m in (stock, fast))  # the training layout on the CPU
    assert torch.equal(stock.eval()(x), fast.eval()(x))
    outs = []
    for m, xi in ((stock, x), (fast, x), (ref, x.double())):
        y = m.train()(xi)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
        outs.append([y.detach()] + [p.grad for p in m.parameters()] + [b for b in m.buffers() if b.is_floating_point()])
    for a, b, r in zip(*outs, strict=True):
        scale = r.abs().max().item() or 1.0
        err_stock, err_fast = ((t.double() - r).abs().max().item() / scale for t in (a, b))
        # 1e-3: a near-tie in a max-pool window may pick the other pixel under different rounding
        assert err_fast <= max(2 * err_stock, 1e-3), (err_fast, err_stock)
