"""The CIFAR ResNet and its plain twin differ only in the shortcut."""

from __future__ import annotations

import pytest
import torch

from labbench.models.resnet import ResNet


def make(**kw) -> ResNet:
    torch.manual_seed(0)
    return ResNet((3, 16, 16), 10, **{"depth": 8, "width": 8, **kw})


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_gray_and_colour_images(norm, channels):
    torch.manual_seed(0)
    model = ResNet((channels, 8, 8), 10, depth=14, width=8, norm=norm)
    assert model(torch.randn(2, channels, 8, 8)).shape == (2, 10)


def test_depth_is_6n_plus_2():
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    assert convs(make(depth=20)) + 1 == 20  # conv layers + the linear head
    with pytest.raises(ValueError, match="6n\\+2"):
        make(depth=18)


def test_plain_and_residual_have_the_same_weights_and_differ_only_in_the_shortcut():
    res, plain = make(residual=True), make(residual=False)
    assert {k: v.shape for k, v in res.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    plain.load_state_dict(res.state_dict())
    res.eval(), plain.eval()
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(res(x), plain(x))
    # with every block's second conv silenced, a residual block passes its (shortcut) input on
    # while a plain block outputs act(0) = 0
    for model in (res, plain):
        for block in model.blocks:
            torch.nn.init.zeros_(block.conv2.weight)
    block_in = torch.randn(2, 8, 16, 16).relu()
    assert torch.allclose(res.blocks[0](block_in), block_in)
    assert torch.all(plain.blocks[0](block_in) == 0)


def test_downsampling_shortcut_subsamples_and_zero_pads():
    block = make().blocks[1]  # the first block of stage 2: stride 2, 8 -> 16 channels
    x = torch.randn(1, 8, 16, 16)
    s = block.shortcut(x)
    assert s.shape == (1, 16, 8, 8)
    assert torch.equal(s[:, :8], x[:, :, ::2, ::2]) and torch.all(s[:, 8:] == 0)


def test_feature_vectors_are_rejected():
    with pytest.raises(ValueError, match="images"):
        ResNet((1, 40), 10)
