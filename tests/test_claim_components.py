"""The components the B claims need, each against a hand computation (issue 14).

Steps to a threshold and a curve's rise (metric expressions), a training subset and
symmetric label noise (data), the L1 penalty and the training-split pass (the classifier),
Adam with and without bias correction (Kingma & Ba's Algorithm 1), units that never fire,
the rank of hidden weights, weight sparsity, and the first-to-last gradient ratio (probes).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import fast_overrides
from labbench.ablation.metrics import metric_value, parse_metric
from labbench.ablation.results import metric_direction, run_value
from labbench.components.optimizers import KingmaBaAdam
from labbench.config import compose
from labbench.data.base import flip_labels
from labbench.data.embedded import Digits
from labbench.probes.final import NeverActive, WeightStructure, hidden_weights, numerical_rank
from labbench.tasks.classify import ClassificationTask, l1_norm
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
