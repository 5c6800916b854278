"""The components the B claims need, each against a hand computation (issue 14).

Steps to a threshold and a curve's rise (metric expressions), a training subset and
symmetric label noise (data), the L1 penalty and the training-split pass (the classifier),
Adam with and without bias correction (Kingma & Ba's Algorithm 1), units that never fire,
the rank of hidden weights, weight sparsity, and the first-to-last gradient ratio (probes).
For C6 (cnn-vs-mlp): test images shifted by k pixels (the classifier's ``test_shift``) and
each arm's parameter count in the report.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import fast_overrides
from labbench.ablation.metrics import metric_value, parse_metric, truncated
from labbench.ablation.results import metric_direction, run_value
from labbench.components.optimizers import KingmaBaAdam
from labbench.config import compose, run_id
from labbench.data.augment import CropFlip, translate
from labbench.data.base import TensorDataModule, flip_labels
from labbench.data.embedded import Digits
from labbench.probes.final import NeverActive, WeightStructure, hidden_weights, numerical_rank
from labbench.tasks.classify import ClassificationTask, check_shift, l1_norm, soft_threshold
from labbench.train import run

pytestmark = pytest.mark.usefixtures("one_thread")


# -- metric expressions --------------------------------------------------------------

def _record(status="completed", max_steps=500):
    return {"status": status, "config": {"trainer": {"max_steps": max_steps}},
            "curves": {"val/acc": [[100, 0.5], [200, 0.92], [300, 0.95]], "val/loss": [[100, 1.0], [200, 0.5], [300, 0.7]]},
            "metrics": {"final": {"val/acc": 0.95, "val/loss": 0.7}}, "failure_values": {"val/loss": 2.3, "val/acc": 0.1}}


def test_steps_to_a_threshold_are_the_first_logged_step_that_reaches_it():
    rec = _record()
    assert metric_value(rec, "val/acc>=0.9") == 200.0
    assert metric_value(rec, "val/acc>=0.95") == 300.0
    assert metric_value(rec, "val/loss<=0.6") == 200.0
    assert metric_value(rec, "val/acc>=5e-1") == 100.0
    assert parse_metric("val/acc>=0.9").threshold == (">=", 0.9)


def test_a_threshold_never_reached_is_censored_at_the_budget_also_for_a_diverged_run():
    assert metric_value(_record(), "val/acc>=0.99") == 500.0
    diverged = _record(status="diverged", max_steps=800)
    assert run_value(diverged, "val/acc>=0.99") == 800.0  # never reached: no faster than the budget
    assert run_value(diverged, "val/acc>=0.9") == 200.0   # reached before it blew up: it counts
    assert run_value(diverged, "val/acc") == 0.1          # a plain value still takes the failure value


def test_a_threshold_is_read_at_the_float32_precision_values_are_logged_at():
    """360 of 400 validation images right is logged as float32(0.9) = 0.8999999761581421: that reaches 90% (read at
    float64 it did not: B1's committed report counted two square-loss seeds as never reaching 90%)."""
    rec = _record()
    rec["curves"]["val/acc"] = [[100, 0.5], [200, 0.8999999761581421], [300, 0.95]]
    assert metric_value(rec, "val/acc>=0.9") == 200.0
    rec["curves"]["val/acc"] = [[100, 0.5], [200, 0.8999998], [300, 0.95]]  # a float32 step below 0.9: not reached
    assert metric_value(rec, "val/acc>=0.9") == 300.0
    rec["curves"]["val/loss"] = [[100, 1.0], [200, 0.6000000238418579]]  # float32(0.6), just above 0.6 in float64
    assert metric_value(rec, "val/loss<=0.6") == 200.0
    assert metric_value(rec, "val/loss<=1e40") == 100.0  # a bar beyond float32's range is read as written


def test_a_threshold_not_reached_by_an_earlier_evaluation_counts_at_that_step():
    """The stability table judges a verdict again on records cut at an earlier step: a threshold not reached by then
    counts at that step, not at the full budget (which would make a run look slower than it had yet been run)."""
    rec = _record(max_steps=500)
    assert metric_value(truncated(rec, 150), "val/acc>=0.9") == 150.0
    assert metric_value(truncated(rec, 250), "val/acc>=0.9") == 200.0
    assert metric_value(rec, "val/acc>=0.99") == 500.0


def test_the_rise_is_the_last_value_minus_the_lowest_and_a_diverged_run_has_none():
    assert metric_value(_record(), "val/loss:rise") == pytest.approx(0.2)
    flat = {"curves": {"val/loss": [[1, 1.0], [2, 0.8], [3, 0.7]]}}
    assert metric_value(flat, "val/loss:rise") == 0.0
    assert metric_value(_record(), "val/acc:drop") == 0.0  # still at its best
    assert metric_value({"curves": {"val/acc": [[1, 0.5], [2, 0.9], [3, 0.8]]}}, "val/acc:drop") == pytest.approx(0.1)
    assert math.isnan(run_value(_record(status="diverged"), "val/loss:rise"))


def test_the_window_noise_is_the_von_neumann_estimate_and_ignores_a_linear_trend():
    trend = {"curves": {"train/loss": [[s, 2.0 - 0.01 * s] for s in range(0, 101, 10)]}}
    assert metric_value(trend, "train/loss@0:100:noise") == pytest.approx(0.0, abs=1e-12)  # a plain std would be 0.33
    zigzag = {"curves": {"train/loss": [[0, 1.0], [10, 1.2], [20, 1.0], [30, 1.2], [40, 9.0]]}}
    # successive differences +0.2, -0.2, +0.2: mean 0.067, sample variance (2 x 0.0178 + 0.0711) / 2 = 0.0533
    assert metric_value(zigzag, "train/loss@0:30:noise") == pytest.approx(math.sqrt(0.16 / 3 / 2))
    assert math.isnan(metric_value(zigzag, "train/loss@30:40:noise"))  # one difference: no spread to measure
    assert math.isnan(run_value({**_record(status="diverged"), "curves": zigzag["curves"]}, "train/loss@0:30:noise"))


def test_derived_expressions_are_lower_is_better_and_bad_ones_name_the_forms():
    assert metric_direction([_record()], "val/acc>=0.9") == "lower"  # fewer steps
    assert metric_direction([_record()], "val/loss:rise") == "lower"
    assert metric_direction([_record()], "val/acc:drop") == "lower"
    assert metric_direction([_record()], "val/loss@0:100:noise") == "lower"
    with pytest.raises(ValueError, match="val/acc>=0.9"):
        parse_metric("val/acc>0.9")


# -- data -----------------------------------------------------------------------------

def test_label_noise_flips_exactly_the_rate_never_to_the_true_class_and_uniformly():
    y = torch.arange(10).repeat(2000)
    noisy = flip_labels(y, 0.3, 10, torch.Generator().manual_seed(0))
    changed = noisy != y
    assert int(changed.sum()) == 6000  # exactly round(0.3 x 20,000)
    shift = ((noisy - y) % 10)[changed]
    counts = torch.bincount(shift, minlength=10)
    assert counts[0] == 0  # never the true class
    assert counts[1:].min() > 600 and counts[1:].max() < 740  # 6000 / 9 = 667 each: symmetric
    again = flip_labels(y, 0.3, 10, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)


def test_a_training_subset_and_noise_touch_the_training_split_only():
    whole = Digits(split_seed=0)
    whole.setup()
    sub = Digits(split_seed=0, train_size=200, label_noise=0.25)
    sub.setup()
    assert sub.split_sizes() == {"train": 200, "val": whole.split_sizes()["val"], "test": whole.split_sizes()["test"]}
    for split in ("val", "test"):
        assert torch.equal(sub.splits[split][1], whole.splits[split][1])  # clean labels
    assert int((sub.splits["train"][1] != whole.splits["train"][1][:200]).sum()) == 50
    with pytest.raises(ValueError, match="train_size=5000 is more than"):
        Digits(train_size=5000).setup()
    with pytest.raises(ValueError, match="label_noise must be"):
        Digits(label_noise=1.0)


# -- the classifier: L1 penalty, training-split pass ---------------------------------

def test_the_l1_penalty_is_the_sum_of_absolute_weights_and_its_gradient_their_sign():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    penalty = l1_norm(model)
    assert float(penalty.detach()) == pytest.approx(float(model[0].weight.abs().sum() + model[2].weight.abs().sum()))
    penalty.backward()
    assert torch.equal(model[0].weight.grad, model[0].weight.sign())
    assert model[0].bias.grad is None  # biases are not penalized


def test_a_run_with_l1_and_the_training_pass_logs_the_penalty_and_the_gap(tmp_path):
    record = run(compose(["data=synthetic", "task.l1=0.001", "task.train_pass=true", *fast_overrides(20)]), tmp_path)
    final = record["metrics"]["final"]
    assert final["train/penalty"] > 0
    assert final["test/gap"] == pytest.approx(final["test/train_acc"] - final["test/acc"], abs=1e-6)
    assert 0.0 <= final["test/train_acc"] <= 1.0 and final["test/train_loss"] > 0
    # a diverged run counts as fitting none of its training split: chance accuracy and ln K, K the classes
    k = round(1 / record["failure_values"]["test/acc"])
    assert record["failure_values"]["test/train_acc"] == pytest.approx(1 / k)
    assert record["failure_values"]["test/train_loss"] == pytest.approx(math.log(k)) and "test/gap" not in record["failure_values"]
    plain = run(compose(["data=synthetic", "probes.weight_structure=true", *fast_overrides(40)]), tmp_path / "plain")
    pulled = run(compose(["data=synthetic", "probes.weight_structure=true", "task.l1=0.01", "optimizer=sgd", "optimizer.lr=0.1",
                          *fast_overrides(40)]), tmp_path / "pulled")
    unpulled = run(compose(["data=synthetic", "probes.weight_structure=true", "optimizer=sgd", "optimizer.lr=0.1", *fast_overrides(40)]),
                   tmp_path / "unpulled")
    assert "train/penalty" not in plain["metrics"]["final"]
    # the penalty is in the loss the optimizer follows: the weights it pulls to 0 cross the sparsity bar
    assert pulled["metrics"]["final"]["test/weight_sparsity"] > unpulled["metrics"]["final"]["test/weight_sparsity"] + 0.01
    with pytest.raises(ValueError, match="l1 is a penalty weight"):
        ClassificationTask(nn.Linear(2, 2), optimizer=None, loss=nn.CrossEntropyLoss(), num_classes=2, l1=-1.0)


def test_the_proximal_l1_step_soft_thresholds_weights_at_their_groups_rate_and_leaves_biases():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.05], [-0.3, 0.1]]))
        layer.bias.copy_(torch.tensor([0.01, -0.01]))
    optimizer = torch.optim.SGD([{"params": [layer.weight], "lr": 0.2}, {"params": [layer.bias], "lr": 0.2}])
    soft_threshold(layer, optimizer, l1=0.5)  # threshold 0.2 x 0.5 = 0.1
    assert torch.allclose(layer.weight, torch.tensor([[0.4, 0.0], [-0.2, 0.0]]))
    assert int((layer.weight == 0).sum()) == 2  # exactly 0, not near it
    assert torch.equal(layer.bias, torch.tensor([0.01, -0.01]))
    with pytest.raises(ValueError, match="valid: subgradient, proximal"):
        ClassificationTask(nn.Linear(2, 2), optimizer=None, loss=nn.CrossEntropyLoss(), num_classes=2, l1=0.1, l1_method="lasso")


def test_proximal_l1_runs_leave_exact_zeros_where_subgradient_runs_leave_none(tmp_path):
    common = ["data=synthetic", "probes.weight_structure=true", "task.l1=0.01", "optimizer=sgd", "optimizer.lr=0.1", "schedule=constant",
              *fast_overrides(40)]
    sub = run(compose(common), tmp_path / "sub")["metrics"]["final"]
    prox = run(compose([*common, "task.l1_method=proximal"]), tmp_path / "prox")["metrics"]["final"]
    assert sub["test/weight_zeros"] == 0.0
    assert prox["test/weight_zeros"] > 0.05
    assert prox["train/penalty"] > 0  # logged beside the loss, not added to it
    # the penalty's reach: l1 x the constant rate x 40 steps
    assert prox["test/l1_reach"] == pytest.approx(0.01 * 0.1 * 40) and sub["test/l1_reach"] == pytest.approx(0.01 * 0.1 * 40)
    # the default (subgradient) keeps its stored runs' ids: the new key is neutral at its default
    assert run_id(compose(common)) == run_id(compose([*common, "task.l1_method=subgradient"]))
    assert run_id(compose(common)) != run_id(compose([*common, "task.l1_method=proximal"]))


# -- Adam with and without bias correction -------------------------------------------

def test_kingma_ba_adam_with_correction_takes_torch_adams_steps():
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    ours, theirs = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    opt_ours = KingmaBaAdam([ours], lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    opt_theirs = torch.optim.Adam([theirs], lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    for k in range(6):
        target = torch.randn(5, 3, generator=torch.Generator().manual_seed(k))
        for w, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_without_correction_the_first_step_is_lr_times_1_minus_beta1_over_sqrt_1_minus_beta2():
    g = torch.tensor([0.5, -2.0, 3e-3])
    for correct, factor in ((True, 1.0), (False, (1 - 0.9) / math.sqrt(1 - 0.999))):
        w = torch.zeros(3, requires_grad=True)
        opt = KingmaBaAdam([w], lr=0.01, eps=0.0, bias_correction=correct)
        w.grad = g.clone()
        opt.step()
        torch.testing.assert_close(w.detach(), -0.01 * factor * g.sign())  # 3.16 x lr without the correction
    with pytest.raises(ValueError, match="betas in"):
        KingmaBaAdam([w], betas=(0.9, 1.0))


def test_the_uncorrected_second_step_by_hand():
    b1, b2, lr = 0.9, 0.999, 0.1
    w = torch.zeros(1, requires_grad=True)
    opt = KingmaBaAdam([w], lr=lr, eps=0.0, bias_correction=False)
    for g in (1.0, 3.0):
        w.grad = torch.tensor([g])
        opt.step()
    m = (1 - b1) * (b1 * 1.0 + 3.0)
    v = (1 - b2) * (b2 * 1.0 + 9.0)
    expected = -lr * (1 - b1) / math.sqrt(1 - b2) - lr * m / math.sqrt(v)
    assert float(w) == pytest.approx(expected, rel=1e-6)


# -- probes of the trained model ------------------------------------------------------

class _Logs:
    def __init__(self, model):
        self.model, self.device, self.values = model, torch.device("cpu"), {}

    def log(self, name, value):
        self.values[name] = value


def _trainer(x):
    return SimpleNamespace(datamodule=SimpleNamespace(placed=lambda split: (x, None), eval_batch_size=3))


def test_never_active_counts_units_silent_on_every_training_sample():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([0.0, -10.0, -1.0]))
    x = torch.tensor([[1.0, 0.0], [-1.0, 5.0], [2.0, 9.0], [0.5, 0.5]])  # unit 0 fires on two; unit 1 never (max 9 - 10 < 0)
    logs = _Logs(model)
    NeverActive().on_test_epoch_end(_trainer(x), logs)
    assert logs.values["test/never_active/1"] == pytest.approx(2 / 3)
    assert logs.values["test/never_active"] == pytest.approx(2 / 3)
    x[2, 1] = 11.0  # now unit 1 fires once (in the second batch of 3): alive
    NeverActive().on_test_epoch_end(_trainer(x), logs)
    assert logs.values["test/never_active"] == pytest.approx(1 / 3)


def test_rank_and_sparsity_of_the_weights_by_hand():
    assert numerical_rank(torch.ones(4, 3)) == 1
    assert numerical_rank(torch.zeros(4, 3)) == 0
    assert numerical_rank(torch.eye(3)) == 3
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.fill_(0.5)            # rank 1
        model[2].weight.copy_(torch.diag(torch.tensor([1.0, 2.0, 0.0, 0.0])))  # rank 2, 14 of 16 zero
        model[4].weight.fill_(1e-4)           # the output layer: not hidden, all near zero
    assert list(hidden_weights(model)) == ["0", "2"]
    logs = _Logs(model)
    WeightStructure(tol=1e-3).on_test_epoch_end(None, logs)
    assert logs.values["test/hidden_rank"] == 1.5
    assert logs.values["test/hidden_rank_share"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert logs.values["test/weight_sparsity"] == pytest.approx((0 + 14 + 8) / (12 + 16 + 8))


def test_constant_init_leaves_hidden_units_copies_of_each_other_in_a_real_run(tmp_path):
    finals = {}
    for init in ("constant", "kaiming_normal"):
        record = run(compose(["data=synthetic", "model.depth=2", "model.width=16", f"init={init}", "probes.weight_structure=true",
                              "probes.never_active=true", *fast_overrides(30)]), tmp_path / init)
        finals[init] = record["metrics"]["final"]
    assert finals["constant"]["test/hidden_rank"] == 1.0  # every row the same, after training too
    assert finals["kaiming_normal"]["test/hidden_rank"] > 8
    assert 0.0 <= finals["kaiming_normal"]["test/never_active"] < 0.5


def test_the_gradient_log_ratio_is_first_over_last_layer(tmp_path):
    record = run(compose(["data=synthetic", "model.depth=3", "activation=sigmoid", "probes.grad_norms=true", "probes.interval=5",
                          *fast_overrides(10)]), tmp_path)
    curves = record["curves"]
    first, last = curves["probe/grad_norm/hidden.0.0"][0][1], curves["probe/grad_norm/head"][0][1]
    n_first, n_last = 16 * 128, 128 * 4  # synthetic data: 16 features, 4 classes; width 128: the first and output layers
    expected = math.log10((first / math.sqrt(n_first)) / (last / math.sqrt(n_last)))  # per weight, not per layer
    assert curves["probe/grad_norm_log_ratio"][0][1] == pytest.approx(expected)
    assert curves["probe/grad_norm_log_ratio"][0][1] < 0  # sigmoid: the first layer gets less


def test_decoupled_decay_shrinks_by_lambda_times_the_schedule_multiplier_whatever_the_rate():
    """Loshchilov & Hutter's Algorithm 2: w <- w - eta_t (alpha * adam_step + lambda * w)."""
    for lr in (0.1, 0.001):
        w = torch.full((3,), 2.0, requires_grad=True)
        opt = KingmaBaAdam([w], lr=lr, weight_decay=0.05, decoupled=True)
        w.grad = torch.zeros(3)  # no data gradient: only the decay moves the weight
        opt.step()
        torch.testing.assert_close(w.detach(), torch.full((3,), 2.0 * 0.95))  # the same for both rates
    w = torch.full((1,), 2.0, requires_grad=True)
    opt = KingmaBaAdam([w], lr=0.1, weight_decay=0.05, decoupled=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)  # eta_t = 0.5
    w.grad = torch.zeros(1)
    opt.step()
    assert float(w) == pytest.approx(2.0 * (1 - 0.5 * 0.05))
    g = torch.tensor([0.3])
    w = torch.tensor([1.0], requires_grad=True)
    opt = KingmaBaAdam([w], lr=0.01, eps=0.0, weight_decay=0.1, decoupled=True)
    w.grad = g.clone()
    opt.step()
    assert float(w) == pytest.approx(1.0 * 0.9 - 0.01 * 1.0)  # decay of the old weight, then Adam's first step lr * sign(g)
    assert sched.get_last_lr() == [0.05]


# -- C6: shifted test images, parameter counts in the report --------------------------

def test_a_shift_moves_the_image_and_fills_the_vacated_border_without_wrapping():
    x = torch.arange(1.0, 13.0).reshape(1, 1, 3, 4)  # rows [1 2 3 4], [5 6 7 8], [9 10 11 12]
    f = torch.tensor([-1.0])
    assert translate(x, -1, 0, f)[0, 0].tolist() == [[5, 6, 7, 8], [9, 10, 11, 12], [-1, -1, -1, -1]]  # up
    assert translate(x, 1, 0, f)[0, 0].tolist() == [[-1, -1, -1, -1], [1, 2, 3, 4], [5, 6, 7, 8]]     # down
    assert translate(x, 0, -2, f)[0, 0].tolist() == [[3, 4, -1, -1], [7, 8, -1, -1], [11, 12, -1, -1]]  # left
    assert translate(x, 0, 2, f)[0, 0].tolist() == [[-1, -1, 1, 2], [-1, -1, 5, 6], [-1, -1, 9, 10]]    # right
    assert translate(x, 0, 1)[0, 0, :, 0].tolist() == [0, 0, 0]  # no fill given: 0
    assert (translate(x, 3, 0, f) == -1).all()  # moved out of the frame: only fill
    two = torch.stack([x[0, 0], 10 * x[0, 0]]).unsqueeze(0)  # 2 channels, each filled with its own value
    moved = translate(two, 1, 0, torch.tensor([-1.0, -2.0]))
    assert moved[0, :, 0].tolist() == [[-1] * 4, [-2] * 4] and moved[0, 1, 1].tolist() == [10, 20, 30, 40]
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        translate(x.flatten(1), 1, 0)


def test_a_shift_is_the_augmentation_crop_at_its_extreme_offsets():
    torch.manual_seed(0)
    x, fill = torch.randn(3, 2, 6, 5), torch.tensor([0.3, -0.7])
    crop = CropFlip(padding=2, flip=0.0)
    for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2), (2, -2)):
        offsets = torch.tensor([[2 - dy, 2 - dx]] * 3)  # (top, left) in the padded image
        expected = crop.apply(x, {"offsets": offsets, "flips": torch.zeros(3, dtype=torch.bool)}, fill)
        assert torch.equal(translate(x, dy, dx, fill), expected)


class _Spots(TensorDataModule):
    """8x8 images on a black background: class 1 a 2x2 blob at rows and columns 3-4, class 0 one
    pixel at (4, 4); ink at least 3 pixels from every edge, so a 2-pixel shift loses none."""

    num_classes = 2

    def load(self):
        x = torch.zeros(6, 1, 8, 8)
        for i, ink in enumerate((1.0, 0.8, 0.9)):
            x[2 * i, 0, 3:5, 3:5] = ink
            x[2 * i + 1, 0, 4, 4] = ink
        y = torch.tensor([1, 0] * 3)
        return x, y, x.clone(), y.clone()


class _PixelSum(nn.Module):
    """Class 1 when the image's pixels sum above ``threshold``: the same answer wherever the ink
    lies, as long as what the shift brings in is background."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x):
        s = x.sum(dim=(1, 2, 3)) - self.threshold
        return torch.stack([-s, s], dim=1)


class _CenterPixel(nn.Module):
    """Class 1 when pixel (3, 3) is brighter than the corner: right on centred images, blind to a moved blob."""

    def forward(self, x):
        v = x[:, 0, 3, 3] - x[:, 0, 0, 0] - 1e-3
        return torch.stack([torch.zeros_like(v), v], dim=1)


def _shift_test(model, data, shift=2):
    import lightning as L

    task = ClassificationTask(model, optimizer=None, loss=nn.CrossEntropyLoss(), num_classes=2, test_shift=shift)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return trainer.test(task, datamodule=data, verbose=False)[0]


def test_shifted_accuracy_of_a_translation_invariant_model_is_its_plain_accuracy():
    data = _Spots(val_fraction=0.0, eval_batch_size=4)  # normalized: black is -mean/std, not 0
    data.setup()
    x, y = data.splits["test"]
    assert float(data.fill) == pytest.approx(float(x[0, 0, 0, 0])) and float(data.fill) < 0  # the fill is the background
    sums = x.sum(dim=(1, 2, 3))
    threshold = (float(sums[y == 0].max()) + float(sums[y == 1].min())) / 2
    logged = _shift_test(_PixelSum(threshold), data)
    assert logged["test/acc"] == 1.0 and logged["test/shift_acc"] == 1.0 and logged["test/shift_drop"] == 0.0
    assert logged["test/shift_loss"] == pytest.approx(logged["test/loss"], rel=1e-5)


def test_a_model_that_reads_one_pixel_loses_what_the_shift_moves_away():
    data = _Spots(val_fraction=0.0, eval_batch_size=4)  # batches of 4 and 2: the pooled mean over both
    logged = _shift_test(_CenterPixel(), data)
    assert logged["test/acc"] == 1.0
    # every shift moves the blob off (3, 3): class 1 reads as 0, class 0 stays right; half of all (a no-op shift gives 1)
    assert logged["test/shift_acc"] == 0.5 and logged["test/shift_drop"] == 0.5
    assert logged["test/shift_loss"] > logged["test/loss"]
    assert _shift_test(_CenterPixel(), data, shift=1)["test/shift_acc"] == 0.75  # 1 pixel up or left keeps (3, 3) inked: 6 of 8


def test_shifts_need_images_and_are_off_by_default(tmp_path):
    with pytest.raises(ValueError, match="moves images"):
        check_shift(2, (1, 16))
    with pytest.raises(ValueError, match="out of its frame"):
        check_shift(8, (1, 8, 8))
    with pytest.raises(ValueError, match="whole number of pixels"):
        ClassificationTask(nn.Linear(2, 2), optimizer=None, loss=nn.CrossEntropyLoss(), num_classes=2, test_shift=-1)
    with pytest.raises(ValueError, match="moves images"):  # refused before any training step
        run(compose(["data=synthetic", "task.test_shift=2", *fast_overrides(4)]), tmp_path / "flat")
    record = run(compose(["data=digits", "model=mlp", "model.width=16", "task.test_shift=1", *fast_overrides(6)]), tmp_path / "mlp")
    final = record["metrics"]["final"]  # an MLP takes the images and flattens them itself
    assert final["test/shift_drop"] == pytest.approx(final["test/acc"] - final["test/shift_acc"], abs=1e-6)
    assert record["metrics"]["directions"]["test/shift_drop"] == "lower" and record["failure_values"]["test/shift_acc"] == 0.1
    assert "test/shift_acc" not in run(compose(["data=digits", "model=mlp", "model.width=16", *fast_overrides(6)]),
                                       tmp_path / "off")["metrics"]["final"]


def test_the_arms_table_shows_each_arms_parameter_count(tmp_path):
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs
    from labbench.ablation.report import parameters_text

    raw = {"name": "widths", "claim": "test claim", "factors": ["model.width"],
           "base": ["data=synthetic", "model.depth=1", "trainer.max_steps=4", "trainer.val_check_interval=2"],
           "arms": {"narrow": ["model.width=8"], "wide": ["model.width=32"]}, "metrics": ["test/acc"],
           "hypotheses": [{"metric": "val/loss", "better": "wide", "worse": "narrow", "direction": "lower"}],
           "profiles": {"smoke": {"seeds": 2}}}
    (tmp_path / "widths.yaml").write_text(yaml.safe_dump(raw))
    engine.reproduce(specs.load(tmp_path / "widths.yaml"), "smoke", root=tmp_path / "runs", wandb=False)
    report = (tmp_path / "runs" / "widths" / "smoke" / "report.md").read_text()
    assert "| arm | overrides | runs | parameters | `val/loss` mean" in report
    # synthetic data: 16 features, 4 classes; one hidden layer: 16 w + w + 4 w + 4
    assert "| `narrow` | `model.width=8` | 2 completed | 172 |" in report
    assert "| `wide` | `model.width=32` | 2 completed | 676 |" in report
    one = {"model": {"parameters": 1234567}}
    assert parameters_text([one, one]) == "1,234,567"
    assert parameters_text([one, None, {"model": {"parameters": 19466}}]) == "19,466 to 1,234,567"
    assert parameters_text([None, {"status": "failed"}]) == "-"
