"""Models: the MLP and the CNN build, shape their outputs and honour their options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labbench.components.activations import Activation
from labbench.components.norms import Norm
from labbench.models import CNN, MLP
from labbench.models.cnn import POOLINGS

# ---------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------


def test_mlp_maps_images_to_class_logits():
    """Inputs (N, 1, 8, 8) give logits (N, num_classes)."""
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=2, width=32)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_mlp_depth_and_width_set_the_hidden_layers():
    """depth hidden Linear layers of width units, then a Linear head."""
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=3, width=24)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 24), (24, 24), (24, 24), (24, 10)]


def test_mlp_depth_zero_is_logistic_regression():
    """depth=0 is a single Linear layer: 64*10 weights + 10 biases."""
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=0)
    assert len(model.hidden) == 0
    assert [type(m) for m in model.modules() if list(m.parameters(recurse=False))] == [nn.Linear]
    assert sum(p.numel() for p in model.parameters()) == 64 * 10 + 10
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_mlp_negative_depth_raises():
    """depth < 0 is rejected."""
    with pytest.raises(ValueError, match="depth"):
        MLP(in_shape=(4,), num_classes=2, depth=-1)


def _input_of_block(model: MLP, index: int, x: torch.Tensor) -> torch.Tensor:
    """The tensor fed into hidden block ``index`` during a forward pass."""
    seen = []
    handle = model.hidden[index].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def _zero_block(model: MLP, index: int) -> None:
    linear = model.hidden[index][0]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()


@pytest.mark.parametrize("residual", [True, False])
def test_mlp_residual_adds_the_skip_connection(residual):
    """With hidden block 2 zeroed (relu(0) = 0), residual passes its input through; plain gives 0."""
    torch.manual_seed(0)
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=3, width=16, residual=residual)
    _zero_block(model, 1)
    x = torch.randn(6, 1, 8, 8)
    into_block2 = _input_of_block(model, 1, x)
    out_of_block2 = _input_of_block(model, 2, x)
    assert into_block2.abs().sum() > 0
    if residual:
        assert torch.allclose(out_of_block2, into_block2)
    else:
        assert torch.count_nonzero(out_of_block2) == 0


def test_mlp_first_layer_never_adds_its_input_back():
    """The first hidden layer (which changes the width) has no skip, even when widths match."""
    torch.manual_seed(0)
    model = MLP(in_shape=(16,), num_classes=3, depth=2, width=16, residual=True)
    _zero_block(model, 0)
    assert torch.count_nonzero(_input_of_block(model, 1, torch.randn(4, 16))) == 0


def test_mlp_dropout_is_active_in_train_mode_only():
    """Dropout randomizes outputs in train mode; eval mode is deterministic and dropout-free."""
    torch.manual_seed(0)
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=2, width=64, dropout=0.5)
    reference = MLP(in_shape=(1, 8, 8), num_classes=10, depth=2, width=64, dropout=0.0)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 1, 8, 8)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    reference.eval()
    assert torch.equal(model(x), model(x))
    assert torch.allclose(model(x), reference(x))


@pytest.mark.parametrize(
    "kind,layer_type", [("none", None), ("batch", nn.BatchNorm1d), ("group", nn.GroupNorm), ("layer", nn.LayerNorm)]
)
def test_mlp_builds_with_each_vector_norm(kind, layer_type):
    """norm none/batch/group/layer builds one norm layer per hidden block and runs."""
    model = MLP(in_shape=(1, 8, 8), num_classes=10, depth=3, width=32, norm=kind)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm))]
    if layer_type is None:
        assert norms == []
    else:
        assert len(norms) == 3 and all(type(m) is layer_type for m in norms)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)


def test_mlp_instance_norm_raises_clear_error():
    """Instance norm on an MLP raises ValueError pointing at the alternatives."""
    with pytest.raises(ValueError, match="instance norm.*norm=none\\|batch\\|group\\|layer"):
        MLP(in_shape=(1, 8, 8), num_classes=10, norm="instance")


@pytest.mark.parametrize("activation", ["tanh", Activation("leaky_relu", negative_slope=0.2)])
def test_mlp_exposes_and_uses_its_activation(activation):
    """model.activation is an Activation; the hidden blocks use its module."""
    model = MLP(in_shape=(4,), num_classes=2, depth=2, width=8, activation=activation)
    assert isinstance(model.activation, Activation)
    expected = nn.Tanh if model.activation.name == "tanh" else nn.LeakyReLU
    acts = [m for m in model.modules() if isinstance(m, expected)]
    assert len(acts) == 2
    if expected is nn.LeakyReLU:
        assert all(m.negative_slope == 0.2 for m in acts)


# ---------------------------------------------------------------------------------------
# CNN
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 40)])
def test_cnn_maps_1d_and_2d_inputs_to_class_logits(shape):
    """(N, 1, 8, 8), (N, 3, 32, 32) and (N, 1, 40) inputs give logits (N, 10)."""
    model = CNN(in_shape=shape, num_classes=10, channels=(8, 16))
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_cnn_uses_conv1d_for_sequences_and_conv2d_for_images():
    """1-D inputs get Conv1d layers only; 2-D inputs Conv2d only."""
    seq = CNN(in_shape=(1, 40), num_classes=10, channels=(8, 16))
    img = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(8, 16))
    assert {type(m) for m in seq.modules() if isinstance(m, nn.modules.conv._ConvNd)} == {nn.Conv1d}
    assert {type(m) for m in img.modules() if isinstance(m, nn.modules.conv._ConvNd)} == {nn.Conv2d}


def test_cnn_has_depth_convs_per_stage():
    """One stage per entry of channels, each with depth conv layers."""
    model = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 16), depth=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [4, 4, 8, 8, 16, 16]


@pytest.mark.parametrize("pooling,side", [("max", 4), ("avg", 4), ("stride", 4), ("none", 8)])
@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 40)])
def test_cnn_poolings_halve_resolution_between_stages(pooling, side, in_shape):
    """max / avg / stride halve the resolution between two stages; none keeps it."""
    model = CNN(in_shape=in_shape, num_classes=10, channels=(4, 8), pooling=pooling)
    features = model.features(torch.randn(2, *in_shape))
    expected_len = in_shape[-1] * side // 8
    assert features.shape[-1] == expected_len and features.shape[1] == 8
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)


def test_cnn_stride_pooling_uses_strided_conv_not_pool_layers():
    """pooling=stride: no pooling layers, the next stage's first conv has stride 2."""
    model = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4, 8), depth=2, pooling="stride")
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    assert [m.stride for m in model.modules() if isinstance(m, nn.Conv2d)] == [(1, 1), (1, 1), (2, 2), (1, 1)]


@pytest.mark.parametrize("padding_mode,corner,centre", [("zeros", 4.0, 9.0), ("circular", 9.0, 9.0)])
def test_cnn_padding_mode_decides_how_many_real_inputs_a_border_output_sees(padding_mode, corner, centre):
    """A 3x3 conv of ones over a map of ones sums its real taps: zero-padded, a corner of the map sees 4 of 9
    (the shrinking that breaks an init's variance arithmetic on small maps); wrapped around, every output sees 9."""
    model = CNN(in_shape=(1, 5, 5), num_classes=10, channels=(1,), padding_mode=padding_mode)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.padding_mode == padding_mode
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        out = conv(torch.ones(1, 1, 5, 5))
    assert out[0, 0, 0, 0].item() == corner and out[0, 0, 2, 2].item() == centre


def test_cnn_rejects_an_unknown_padding_mode():
    with pytest.raises(ValueError, match="unknown padding_mode 'reflect'; valid: zeros, circular"):
        CNN(in_shape=(1, 8, 8), num_classes=10, padding_mode="reflect")


def test_cnn_padding_mode_zeros_keeps_stored_run_ids():
    """padding_mode was added after CNN runs were stored: at its default (zeros) it stays out of the run id, any
    other value is part of it."""
    from labbench.config import compose, run_id

    base = ["data=digits", "model=cnn"]
    assert run_id(compose(base)) == run_id(compose(base + ["model.padding_mode=zeros"]))
    assert run_id(compose(base)) != run_id(compose(base + ["model.padding_mode=circular"]))


@pytest.mark.parametrize("pooling,last_map", [("max", 64 * 14 * 14), ("stride", 64 * 14 * 14), ("none", 64 * 28 * 28)])
def test_cnn_flatten_head_sees_every_position_of_the_last_map(pooling, last_map):
    """head=flatten feeds the last map's every position to the classifier (LeNet, Simard et al. 2003): on a 28x28
    digit with 32/64 channels that is 64 x 14 x 14 features after one halving, 64 x 28 x 28 without; the default gap
    head sees 64 averages. A hidden layer (head_width) sits between them with the activation."""
    gap = CNN(in_shape=(1, 28, 28), num_classes=10, pooling=pooling)
    flat = CNN(in_shape=(1, 28, 28), num_classes=10, pooling=pooling, head="flatten")
    hidden = CNN(in_shape=(1, 28, 28), num_classes=10, pooling=pooling, head="flatten", head_width=100)
    assert gap.head.in_features == 64 and flat.head.in_features == last_map
    assert [type(m) for m in hidden.head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (hidden.head[0].in_features, hidden.head[0].out_features, hidden.head[2].in_features) == (last_map, 100, 100)
    for model in (gap, flat, hidden):
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_cnn_flatten_head_tells_positions_apart_where_gap_cannot():
    """The property that makes the flattened head able to memorise a training split and the gap head nearly
    shift-invariant: a map moved around its circle (circular padding, no pooling: every output equivariant) gives the
    gap head the same logits exactly and the flatten head different ones."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 8, 8)
    moved = torch.roll(x, shifts=(3, 2), dims=(2, 3))
    gap = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4,), pooling="none", padding_mode="circular").eval()
    flat = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4,), pooling="none", padding_mode="circular",
               head="flatten").eval()
    with torch.no_grad():
        assert torch.allclose(gap(x), gap(moved), atol=1e-5)
        assert not torch.allclose(flat(x), flat(moved), atol=1e-3)


def test_cnn_flatten_head_leaves_batchnorm_untouched_and_builds_on_1d_and_1x1_maps():
    """Measuring the flattened size must not train: BatchNorm's running statistics stay at their initial values (mean
    0, variance 1, no batch counted), and a last map of 1x1 (where a training-mode BatchNorm refuses a batch of one)
    builds. 1-D inputs flatten channels x length."""
    model = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4, 4, 4, 4), norm="batch", head="flatten")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(int(m.num_batches_tracked) == 0 and torch.all(m.running_var == 1) and torch.all(m.running_mean == 0) for m in bns)
    assert model.head.in_features == 4 and model.training and all(m.training for m in model.modules())
    seq = CNN(in_shape=(1, 40), num_classes=10, channels=(8, 16), head="flatten")
    assert seq.head.in_features == 16 * 20 and seq(torch.randn(2, 1, 40)).shape == (2, 10)


def test_cnn_rejects_an_unknown_head_and_a_negative_head_width():
    with pytest.raises(ValueError, match="unknown head 'avgmax'; valid: gap, flatten"):
        CNN(in_shape=(1, 8, 8), num_classes=10, head="avgmax")
    with pytest.raises(ValueError, match="head_width must be 0"):
        CNN(in_shape=(1, 8, 8), num_classes=10, head_width=-1)


def test_cnn_head_defaults_keep_stored_run_ids():
    """head and head_width were added after CNN runs were stored: at their defaults (gap, 0) they stay out of the run
    id, any other value is part of it; the gap head's parameters keep their names (a stored checkpoint still loads)."""
    from labbench.config import compose, run_id

    base = ["data=digits", "model=cnn"]
    assert run_id(compose(base)) == run_id(compose(base + ["model.head=gap", "model.head_width=0"]))
    assert run_id(compose(base)) != run_id(compose(base + ["model.head=flatten"]))
    assert run_id(compose(base + ["model.head=flatten"])) != run_id(compose(base + ["model.head=flatten", "model.head_width=100"]))
    assert {"head.weight", "head.bias"} <= set(CNN(in_shape=(1, 8, 8), num_classes=10).state_dict())


def test_cnn_conv_bias_only_without_norm():
    """Convs carry a bias when norm is none and none when a norm follows."""
    plain = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(8, 16))
    normed = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(8, 16), norm="batch")
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert all(m.bias is None for m in normed.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("kind", ["batch", "group", "layer", "instance"])
def test_cnn_builds_with_each_norm(kind):
    """Every norm kind (including instance) works on feature maps."""
    model = CNN(in_shape=(3, 16, 16), num_classes=10, channels=(8, 16), norm=Norm(kind, groups=4))
    assert model(torch.randn(4, 3, 16, 16)).shape == (4, 10)


def test_cnn_rejects_inputs_without_channels_and_positions():
    """in_shape of length 1 (flat vectors (N, 16)) raises ValueError."""
    with pytest.raises(ValueError, match=r"\(C, L\) or \(C, H, W\)"):
        CNN(in_shape=(16,), num_classes=10)


def test_cnn_unknown_pooling_lists_valid_ones():
    """An unknown pooling raises ValueError listing every valid pooling."""
    with pytest.raises(ValueError) as err:
        CNN(in_shape=(1, 8, 8), num_classes=10, pooling="lp")
    for name in POOLINGS:
        assert name in str(err.value)


def test_cnn_exposes_its_activation():
    """model.activation is an Activation, used by every conv stage."""
    model = CNN(in_shape=(1, 8, 8), num_classes=10, channels=(4, 8), activation="tanh")
    assert isinstance(model.activation, Activation) and model.activation.name == "tanh"
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
