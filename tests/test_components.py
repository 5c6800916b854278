"""Components: init schemes, norms, activations, LR schedules and the one-hot MSE loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labbench.components import schedules
from labbench.components.activations import NAMES, Activation
from labbench.components.init import BIAS_POLICIES, SCHEMES, InitScheme
from labbench.components.losses import OneHotMSELoss
from labbench.components.norms import KINDS, Norm
from labbench.models import MLP

FAN_IN, FAN_OUT = 1000, 500


def _big_linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(FAN_IN, FAN_OUT)  # weight (500, 1000): 500k samples, variance known to <1%


def _weight_var(scheme: InitScheme, activation: Activation | None = None) -> float:
    layer = scheme.apply(_big_linear(), activation)
    return layer.weight.var().item()


# ---------------------------------------------------------------------------------------
# Init schemes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal"])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_variance_is_gain_squared_times_2_over_fan_sum(scheme, gain):
    """Xavier/Glorot: Var(W) = gain^2 * 2 / (fan_in + fan_out)."""
    expected = gain**2 * 2 / (FAN_IN + FAN_OUT)
    assert _weight_var(InitScheme(scheme=scheme, gain=gain)) == pytest.approx(expected, rel=0.05)


KAIMING_GAINS = [
    pytest.param(Activation("relu"), math.sqrt(2), id="relu"),
    pytest.param(Activation("tanh"), 5 / 3, id="tanh"),
    pytest.param(Activation("leaky_relu", negative_slope=0.2), math.sqrt(2 / (1 + 0.2**2)), id="leaky0.2"),
    pytest.param(Activation("leaky_relu", negative_slope=0.5), math.sqrt(2 / (1 + 0.5**2)), id="leaky0.5"),
    pytest.param(Activation("identity"), 1.0, id="identity"),
]


@pytest.mark.parametrize("scheme", ["kaiming_uniform", "kaiming_normal"])
@pytest.mark.parametrize("activation,gain", KAIMING_GAINS)
def test_kaiming_fan_in_variance_uses_activation_gain(scheme, activation, gain):
    """Kaiming (fan_in): Var(W) = gain(activation)^2 / fan_in."""
    expected = gain**2 / FAN_IN
    assert _weight_var(InitScheme(scheme=scheme), activation) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("scheme", ["kaiming_uniform", "kaiming_normal"])
def test_kaiming_fan_out_mode_uses_fan_out(scheme):
    """Kaiming with mode=fan_out: Var(W) = gain^2 / fan_out (twice fan_in's here)."""
    expected = 2.0 / FAN_OUT
    assert _weight_var(InitScheme(scheme=scheme, mode="fan_out"), Activation("relu")) == pytest.approx(
        expected, rel=0.05
    )


def test_kaiming_defaults_to_relu_gain_without_activation():
    """apply(model) with no activation uses the ReLU gain sqrt(2)."""
    assert _weight_var(InitScheme(scheme="kaiming_normal")) == pytest.approx(2.0 / FAN_IN, rel=0.05)


@pytest.mark.parametrize("std", [0.01, 0.2])
def test_normal_scheme_variance_is_std_squared(std):
    """normal(std): Var(W) = std^2, mean 0."""
    layer = InitScheme(scheme="normal", std=std).apply(_big_linear())
    assert layer.weight.var().item() == pytest.approx(std**2, rel=0.05)
    assert abs(layer.weight.mean().item()) < 0.05 * std


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_rows_are_orthonormal_times_gain(gain):
    """orthogonal: W W^T = gain^2 I for a wide (out <= in) matrix."""
    layer = InitScheme(scheme="orthogonal", gain=gain).apply(nn.Linear(200, 100))
    w = layer.weight
    assert torch.allclose(w @ w.T, gain**2 * torch.eye(100), atol=1e-4)


def test_zeros_and_constant_schemes_fill_weights():
    """zeros sets every weight to 0; constant sets every weight to ``value``."""
    zeros = InitScheme(scheme="zeros").apply(nn.Linear(10, 5))
    assert torch.count_nonzero(zeros.weight) == 0
    const = InitScheme(scheme="constant", value=0.37).apply(nn.Conv2d(3, 4, 3))
    assert torch.all(const.weight == 0.37)


def test_conv_kernels_are_initialized_too():
    """4-D conv kernels count as weights: kaiming fan_in = C_in * k * k."""
    torch.manual_seed(0)
    conv = InitScheme(scheme="kaiming_normal").apply(nn.Conv2d(64, 128, 3), Activation("relu"))
    assert conv.weight.var().item() == pytest.approx(2.0 / (64 * 9), rel=0.05)


def test_bias_policy_zeros_and_constant():
    """bias=zeros zeroes every bias; bias=constant sets it to bias_value."""
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 3))
    InitScheme(scheme="xavier_normal", bias="zeros").apply(model)
    assert torch.count_nonzero(model[0].bias) == 0 and torch.count_nonzero(model[2].bias) == 0
    InitScheme(scheme="xavier_normal", bias="constant", bias_value=0.25).apply(model)
    assert torch.all(model[0].bias == 0.25) and torch.all(model[2].bias == 0.25)


def test_bias_policy_default_leaves_biases_untouched():
    """bias=default keeps PyTorch's own bias init (non-zero, unchanged)."""
    layer = nn.Linear(10, 5)
    before = layer.bias.detach().clone()
    InitScheme(scheme="xavier_normal", bias="default").apply(layer)
    assert torch.equal(layer.bias, before)
    assert torch.count_nonzero(before) > 0


def test_default_scheme_leaves_weights_untouched():
    """scheme=default keeps PyTorch's weight init exactly."""
    model = nn.Sequential(nn.Linear(10, 5), nn.Conv1d(2, 3, 3))
    before = [m.weight.detach().clone() for m in model]
    InitScheme(scheme="default").apply(model)
    for m, w in zip(model, before):
        assert torch.equal(m.weight, w)


@pytest.mark.parametrize(
    "norm", [nn.BatchNorm1d(8), nn.LayerNorm(8), nn.GroupNorm(2, 8)], ids=["batch", "layer", "group"]
)
def test_norm_layers_keep_identity_start(norm):
    """Norm layers keep scale 1 and shift 0, even under constant weight/bias schemes."""
    model = nn.Sequential(nn.Linear(4, 8), norm)
    InitScheme(scheme="constant", value=0.5, bias="constant", bias_value=0.3).apply(model)
    assert torch.all(norm.weight == 1.0) and torch.all(norm.bias == 0.0)
    assert torch.all(model[0].weight == 0.5) and torch.all(model[0].bias == 0.3)  # the rest is initialized


def _hidden_stds(scheme: str) -> list[float]:
    torch.manual_seed(0)
    model = MLP(in_shape=(1, 256), num_classes=10, depth=20, width=256, activation="relu")
    InitScheme(scheme=scheme, bias="zeros").apply(model, model.activation)
    stds: list[float] = []
    for block in model.hidden:
        block.register_forward_hook(lambda mod, inp, out: stds.append(out.std().item()))
    with torch.no_grad():
        model(torch.randn(1024, 1, 256))
    assert len(stds) == 20
    return stds


def test_kaiming_keeps_activation_scale_through_20_relu_layers():
    """He init: the last/first hidden-layer activation std stays within [0.5, 2]."""
    stds = _hidden_stds("kaiming_normal")
    assert 0.5 < stds[-1] / stds[0] < 2.0


def test_xavier_shrinks_activations_through_20_relu_layers():
    """Glorot init with ReLU halves the variance per layer: ~2^-9.5 after 19 layers."""
    stds = _hidden_stds("xavier_normal")
    assert stds[-1] / stds[0] < 0.05


@pytest.mark.parametrize(
    "kwargs,listed",
    [
        ({"scheme": "he"}, SCHEMES),
        ({"bias": "ones"}, BIAS_POLICIES),
        ({"scheme": "kaiming_normal", "mode": "fan_avg"}, ("fan_in", "fan_out")),
    ],
)
def test_unknown_init_options_raise_listing_valid_ones(kwargs, listed):
    """Unknown scheme / bias policy / kaiming mode: ValueError naming every valid option."""
    with pytest.raises(ValueError) as err:
        InitScheme(**kwargs)
    for option in listed:
        assert option in str(err.value)


# ---------------------------------------------------------------------------------------
# Norms
# ---------------------------------------------------------------------------------------


def _sample0_output(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    layer.train()
    with torch.no_grad():
        return layer(x)[0]


def _sample0_depends_on_batch(layer: nn.Module, shape: tuple[int, ...]) -> bool:
    torch.manual_seed(0)
    x = torch.randn(*shape)
    other = x.clone()
    other[1:] = 3.0 * torch.randn_like(other[1:]) + 2.0  # different batch mates, same sample 0
    return not torch.allclose(_sample0_output(layer, x), _sample0_output(layer, other), atol=1e-5)


@pytest.mark.parametrize("spatial_dims,shape", [(0, (16, 8)), (1, (16, 8, 10)), (2, (16, 8, 5, 5))])
def test_batch_norm_couples_samples_in_a_batch(spatial_dims, shape):
    """Batch norm (train mode): sample 0's output changes when the other samples change."""
    layer = Norm("batch").make(8, spatial_dims)
    assert _sample0_depends_on_batch(layer, shape)


@pytest.mark.parametrize(
    "kind,spatial_dims,shape",
    [
        ("group", 0, (16, 8)),
        ("group", 2, (16, 8, 5, 5)),
        ("layer", 0, (16, 8)),
        ("layer", 2, (16, 8, 5, 5)),
        ("instance", 1, (16, 8, 10)),
        ("instance", 2, (16, 8, 5, 5)),
    ],
)
def test_per_sample_norms_are_independent_of_batch_mates(kind, spatial_dims, shape):
    """Group, layer and instance norm: sample 0's output ignores the rest of the batch."""
    layer = Norm(kind, groups=4).make(8, spatial_dims)
    assert not _sample0_depends_on_batch(layer, shape)


def test_none_norm_is_identity():
    """norm=none builds an identity layer."""
    x = torch.randn(4, 8)
    assert torch.equal(Norm("none").make(8)(x), x)


def test_layer_norm_on_feature_maps_normalizes_over_c_h_w():
    """Layer norm on (N, C, H, W) standardizes each sample over all of C, H, W."""
    torch.manual_seed(0)
    x = 5 * torch.randn(4, 8, 6, 6) + 3
    out = Norm("layer").make(8, spatial_dims=2)(x)
    flat = out.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(flat.var(1, unbiased=False), torch.ones(4), atol=1e-3)


def test_group_norm_needs_a_divisor_of_the_channels():
    """Group norm with channels not divisible by groups raises a ValueError naming the fix."""
    with pytest.raises(ValueError, match="divisor of 6"):
        Norm("group", groups=4).make(6, spatial_dims=2)


def test_instance_norm_rejects_feature_vectors():
    """Instance norm has no spatial positions to normalize over on (N, C) inputs."""
    with pytest.raises(ValueError, match="instance norm"):
        Norm("instance").make(8, spatial_dims=0)


def test_unknown_norm_kind_lists_valid_kinds():
    """An unknown norm kind raises ValueError listing every valid kind."""
    with pytest.raises(ValueError) as err:
        Norm("weight")
    for kind in KINDS:
        assert kind in str(err.value)


# ---------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------

_X = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
EXPECTED_ACTIVATION = {
    "relu": torch.tensor([0.0, 0.0, 0.0, 1.0, 3.0]),
    "leaky_relu": torch.tensor([-0.02, -0.01, 0.0, 1.0, 3.0]),  # default slope 0.01
    "gelu": F.gelu(_X),
    "silu": _X * torch.sigmoid(_X),
    "tanh": torch.tanh(_X),
    "sigmoid": torch.tensor([1 / (1 + math.e**2), 1 / (1 + math.e), 0.5, 1 / (1 + 1 / math.e), 1 / (1 + math.e**-3)]),
    "identity": _X,
}


def test_every_activation_name_has_an_expected_behaviour_here():
    """This test module knows the behaviour of every name in NAMES (keeps the next test complete)."""
    assert set(NAMES) == set(EXPECTED_ACTIVATION)


@pytest.mark.parametrize("name", NAMES)
def test_activation_module_computes_its_function(name):
    """Activation(name).make() computes the named function."""
    module = Activation(name).make()
    assert isinstance(module, nn.Module)
    assert torch.allclose(module(_X), EXPECTED_ACTIVATION[name], atol=1e-5)


def test_leaky_relu_uses_its_negative_slope():
    """leaky_relu(-1) = -negative_slope."""
    module = Activation("leaky_relu", negative_slope=0.3).make()
    assert module(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.3, 2.0])


def test_make_returns_a_fresh_module_each_time():
    """Each layer gets its own activation module."""
    act = Activation("relu")
    assert act.make() is not act.make()


def test_unknown_activation_lists_valid_names():
    """An unknown activation raises ValueError listing every valid name."""
    with pytest.raises(ValueError) as err:
        Activation("swish")
    for name in NAMES:
        assert name in str(err.value)


# ---------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------

BASE_LR, TOTAL = 0.1, 100


def _lrs(factory, total_steps: int = TOTAL, **kwargs) -> list[float]:
    """Learning rate in use at each optimizer step (read before the step)."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=BASE_LR)
    sched = factory(opt, total_steps, **kwargs)
    lrs = []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_constant_schedule_stays_at_base_lr():
    """constant: the base rate at every step."""
    assert _lrs(schedules.constant) == pytest.approx([BASE_LR] * TOTAL)


def test_constant_with_warmup_ramps_linearly_then_holds():
    """warmup_steps=10: lr = (s+1)/10 * base for s < 10, then the base rate."""
    lrs = _lrs(schedules.constant, warmup_steps=10)
    assert lrs[:10] == pytest.approx([(s + 1) / 10 * BASE_LR for s in range(10)])
    assert lrs[10:] == pytest.approx([BASE_LR] * (TOTAL - 10))


def test_step_schedule_decays_by_gamma_every_step_size():
    """step(30, 0.1): 0.1 for steps 0-29, 0.01 from 30, 0.001 from 60, 1e-4 from 90."""
    lrs = _lrs(schedules.step, step_size=30, gamma=0.1)
    assert lrs[0] == pytest.approx(0.1) and lrs[29] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.01) and lrs[59] == pytest.approx(0.01)
    assert lrs[60] == pytest.approx(0.001)
    assert lrs[90] == pytest.approx(0.0001)


def test_cosine_schedule_key_values():
    """cosine (min ratio 0): base at step 0, half at the midpoint (49.5), exactly 0 at the last step."""
    lrs = _lrs(schedules.cosine, min_lr_ratio=0.0)
    assert lrs[0] == pytest.approx(BASE_LR)
    assert (lrs[49] + lrs[50]) / 2 == pytest.approx(BASE_LR / 2)
    assert lrs[49] > BASE_LR / 2 > lrs[50]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_cosine_schedule_floor_is_min_lr_ratio():
    """cosine with min_lr_ratio=0.1 ends at ~0.1 x base and never goes below it."""
    lrs = _lrs(schedules.cosine, min_lr_ratio=0.1)
    assert min(lrs) >= 0.1 * BASE_LR - 1e-12
    assert lrs[-1] == pytest.approx(0.1 * BASE_LR, rel=1e-9)


def test_cosine_with_warmup_ramps_then_decays_over_the_remaining_steps():
    """cosine + warmup 10: linear ramp, base at step 10, half-way down at step 54.5, 0 at the last step."""
    lrs = _lrs(schedules.cosine, warmup_steps=10)
    assert lrs[:10] == pytest.approx([(s + 1) / 10 * BASE_LR for s in range(10)])
    assert lrs[10] == pytest.approx(BASE_LR)
    assert (lrs[54] + lrs[55]) / 2 == pytest.approx(BASE_LR / 2)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_inverse_sqrt_peaks_at_base_then_decays_as_inverse_sqrt():
    """inverse_sqrt(warmup 10): ramp to the base rate at steps 9-10, then base * sqrt(10 / s)."""
    lrs = _lrs(schedules.inverse_sqrt, warmup_steps=10)
    assert max(lrs) == pytest.approx(BASE_LR)
    assert lrs[9] == pytest.approx(BASE_LR) and lrs[10] == pytest.approx(BASE_LR)
    assert lrs[:9] == pytest.approx([(s + 1) / 10 * BASE_LR for s in range(9)])
    for s in (10, 20, 40, 99):
        assert lrs[s] == pytest.approx(BASE_LR * math.sqrt(10 / (s - 10 + 10)))
    assert lrs[40] == pytest.approx(BASE_LR / 2)


def test_one_cycle_starts_low_peaks_at_base_and_ends_far_below():
    """one_cycle: base/25 at step 0, the base rate near pct_start * total, ends far below the start."""
    lrs = _lrs(schedules.one_cycle, pct_start=0.3)
    assert lrs[0] == pytest.approx(BASE_LR / 25)
    peak = max(range(TOTAL), key=lrs.__getitem__)
    assert abs(peak - 0.3 * TOTAL) <= 2
    assert lrs[peak] == pytest.approx(BASE_LR, rel=1e-3)
    assert lrs[-1] < 1e-3 * lrs[0]


def test_schedules_reject_invalid_arguments():
    """Negative warmup and non-positive step sizes raise ValueError."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.constant(opt, TOTAL, warmup_steps=-1)
    with pytest.raises(ValueError, match="step_size"):
        schedules.step(opt, TOTAL, step_size=0)


# ---------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------


def test_one_hot_mse_hand_example():
    """Squared error to the one-hot target, summed over classes, averaged over the batch."""
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([1, 2])
    # errors: [1, 1, 0] -> 2 and [0, 0, -1] -> 1; mean 1.5
    assert OneHotMSELoss()(logits, target).item() == pytest.approx(1.5)


def test_one_hot_mse_matches_formula_on_random_logits():
    """Equals ((logits - onehot)**2).sum(1).mean()."""
    torch.manual_seed(0)
    logits, target = torch.randn(16, 10), torch.randint(0, 10, (16,))
    expected = ((logits - F.one_hot(target, 10).float()) ** 2).sum(1).mean()
    assert torch.allclose(OneHotMSELoss()(logits, target), expected)


def test_one_hot_mse_is_zero_at_the_one_hot_target():
    """Zero loss when the logits equal the (scaled) one-hot targets."""
    target = torch.tensor([0, 3, 1])
    assert OneHotMSELoss()(F.one_hot(target, 4).float(), target).item() == 0.0
    assert OneHotMSELoss(scale=5.0)(5.0 * F.one_hot(target, 4).float(), target).item() == 0.0
    assert OneHotMSELoss(scale=5.0)(F.one_hot(target, 4).float(), target).item() > 0.0
