"""Every probe against a hand computation on a tiny model; probes off leave a run unchanged."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import fast_overrides
from labbench.config import compose
from labbench.models import MLP, Transformer
from labbench.probes.layers import ActivationStats, AttentionEntropy, DeadUnits, GradNorms, LossSpikes, UpdateRatios
from labbench.train import run


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def log_metrics(self, metrics, step):
        self.rows.append((step, dict(metrics)))

    def merged(self) -> dict:
        return {k: v for _, m in self.rows for k, v in m.items()}


def harness(model, step: int = 0):
    recorder = Recorder()
    trainer = SimpleNamespace(global_step=step, loggers=[recorder])
    return trainer, SimpleNamespace(model=model), recorder


def mlp() -> MLP:
    torch.manual_seed(0)
    return MLP((1, 6), 3, depth=2, width=4)


def test_grad_norms_match_hand_computation():
    model = mlp()
    model(torch.randn(5, 1, 6)).pow(2).sum().backward()
    trainer, module, rec = harness(model)
    GradNorms(interval=10).on_before_optimizer_step(trainer, module, None)
    got = rec.merged()
    expected = {"hidden.0.0": model.hidden[0][0].weight.grad.norm(), "hidden.1.0": model.hidden[1][0].weight.grad.norm(), "head": model.head.weight.grad.norm()}
    for name, value in expected.items():
        assert got[f"probe/grad_norm/{name}"] == pytest.approx(float(value))
    assert got["probe/grad_norm/total"] == pytest.approx(math.sqrt(sum(float(v) ** 2 for v in expected.values())))
    trainer.global_step = 3  # not a multiple of the interval: nothing measured
    rec.rows.clear()
    GradNorms(interval=10).on_before_optimizer_step(trainer, module, None)
    assert rec.rows == []


def test_update_ratio_is_step_size_over_weight_size():
    model = mlp()
    model(torch.randn(5, 1, 6)).pow(2).sum().backward()
    trainer, module, rec = harness(model)
    probe = UpdateRatios(interval=1)
    probe.on_before_optimizer_step(trainer, module, None)
    w0 = model.head.weight.detach().clone()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    trainer.global_step = 1
    probe.on_train_batch_end(trainer, module, None, None, 0)
    expected = float(0.1 * model.head.weight.grad.norm() / w0.norm())
    assert rec.merged()["probe/update_ratio/head"] == pytest.approx(expected, rel=1e-5)
    assert rec.rows[0][0] == 0  # reported at the step that was taken


def test_activation_stats_match_the_hidden_outputs():
    model = mlp()
    x = torch.randn(7, 1, 6)
    trainer, module, rec = harness(model)
    probe = ActivationStats(interval=1)
    probe.on_train_batch_start(trainer, module, None, 0)
    model(x)
    trainer.global_step = 1
    probe.on_train_batch_end(trainer, module, None, None, 0)
    h1 = torch.relu(model.hidden[0][0](x.flatten(1))).detach()
    got = rec.merged()
    assert got["probe/act_mean/hidden.0.2"] == pytest.approx(float(h1.mean()), rel=1e-5)
    assert got["probe/act_std/hidden.0.2"] == pytest.approx(float(h1.std()), rel=1e-5)
    assert not model.hidden[0][2]._forward_hooks  # hooks removed after the measured step


def test_dead_units_counts_units_inactive_on_the_whole_batch():
    model = mlp()
    with torch.no_grad():
        model.hidden[0][0].bias[:2] = -1e3  # units 0 and 1 of layer 1 can never fire
        model.hidden[0][0].bias[2:] = 1e3  # units 2 and 3 always fire
    trainer, module, rec = harness(model)
    probe = DeadUnits(interval=1)
    probe.on_train_batch_start(trainer, module, None, 0)
    model(torch.randn(9, 1, 6))
    probe.on_train_batch_end(trainer, module, None, None, 0)
    assert rec.merged()["probe/dead_fraction/hidden.0.2"] == 0.5


def test_attention_entropy_of_uniform_causal_attention():
    """With zero query/key weights every query attends uniformly to its t+1 visible keys."""
    torch.manual_seed(0)
    model = Transformer(11, 8, n_layers=1, d_model=16, n_heads=2)
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.zero_()
        model.blocks[0].attn.qkv.bias.zero_()
    trainer, module, rec = harness(model)
    probe = AttentionEntropy(interval=1)
    probe.on_train_batch_start(trainer, module, None, 0)
    model(torch.randint(0, 11, (3, 8)))
    probe.on_train_batch_end(trainer, module, None, None, 0)
    expected = sum(math.log(t + 1) for t in range(8)) / 8
    assert rec.merged()["probe/attn_entropy/blocks.0.attn"] == pytest.approx(expected, rel=1e-5)
    assert model.blocks[0].attn.keep_attention is False  # back on the fast path


def test_loss_spikes_are_counted_against_the_recent_median():
    trainer, module, rec = harness(None)
    probe = LossSpikes(factor=2.0, window=20)
    losses = [1.0] * 12 + [5.0] + [1.0] * 3 + [float("nan")]
    for step, value in enumerate(losses):
        trainer.global_step = step + 1
        probe.on_train_batch_end(trainer, module, {"loss": torch.tensor(value)}, None, 0)
    assert probe.count == 2 and probe.steps == [12, 16]
    assert rec.rows[-1] == (16, {"probe/loss_spikes": 2.0, "probe/loss_spike_events": 2.0})
    probe.on_train_end(trainer, module)
    assert rec.rows[-1] == (17, {"probe/loss_spikes": 2.0, "probe/loss_spike_events": 2.0})  # always logged at the end


def test_a_burst_of_spikes_is_one_event():
    """Steps 12-15 spike in one burst, step 20 alone: 5 spike steps, 2 events (a burst counts once)."""
    trainer, module, rec = harness(None)
    probe = LossSpikes(factor=2.0, window=20)
    losses = [1.0] * 12 + [5.0, 6.0, 5.0, 4.0] + [1.0] * 4 + [9.0, 1.0]
    for step, value in enumerate(losses):
        trainer.global_step = step + 1
        probe.on_train_batch_end(trainer, module, {"loss": torch.tensor(value)}, None, 0)
    assert probe.steps == [12, 13, 14, 15, 20]
    assert (probe.count, probe.events) == (5, 2)
    assert rec.rows[-1] == (20, {"probe/loss_spikes": 5.0, "probe/loss_spike_events": 2.0})


def test_a_run_without_spikes_reports_zero(tmp_path):
    from labbench.ablation.metrics import metric_value

    record = run(compose(["data=synthetic", "probes.loss_spikes=true", *fast_overrides(20)]), tmp_path)
    assert record["metrics"]["final"]["probe/loss_spikes"] == 0.0
    assert record["metrics"]["final"]["probe/loss_spike_events"] == 0.0
    # the running count starts at 0, so "spikes up to step 10" is 0 for it, not undefined
    assert record["curves"]["probe/loss_spikes"][0] == [0, 0.0]
    assert metric_value(record, "probe/loss_spikes@10") == 0.0


def test_the_plotted_mean_of_a_running_count_holds_each_seed_at_its_last_count():
    """probes.png's mean over seeds: a spike count is logged only when it changes, so between its logged steps a seed
    still has its last count (before, the mean at a step was that of whichever seeds logged there); a run ends at its
    last logged step (a diverged run is not extended)."""
    from labbench.ablation.report import mean_band

    a = {0: 0.0, 50: 3.0, 300: 3.0}
    b = {0: 0.0, 120: 1.0, 300: 1.0}
    stopped = {0: 0.0, 60: 5.0}  # diverged at step 60
    steps, mean, std = mean_band([a, b, stopped])
    assert steps == [0, 50, 60, 120, 300]
    assert mean.tolist() == [0.0, 1.0, 8 / 3, 2.0, 2.0]  # step 50: (3 + 0 + 0) / 3; 60: (3 + 0 + 5) / 3; 120: (3 + 1) / 2
    assert std[3] == 1.0


def test_probes_land_in_the_record_and_do_not_change_the_numbers(tmp_path):
    base = ["data=synthetic", "model.depth=2", *fast_overrides(20)]
    probes = [f"probes.{k}=true" for k in ("grad_norms", "update_ratios", "activations", "dead_units", "loss_spikes")]
    plain = run(compose(base), tmp_path / "plain")
    probed = run(compose([*base, *probes, "probes.interval=5"]), tmp_path / "probed")
    assert probed["curves"]["train/loss"] == plain["curves"]["train/loss"]
    steps = [s for s, _ in probed["curves"]["probe/grad_norm/total"]]
    assert steps == [0, 5, 10, 15]
    assert "probe/dead_fraction/hidden.0.2" in probed["curves"] and "probe/update_ratio/head" in probed["curves"]
    assert not any(k.startswith("probe/") for k in plain["curves"])


def test_init_activation_stats_by_layer_and_the_log_ratio(tmp_path):
    """He et al.'s argument, measured: in a deep ReLU MLP Xavier's spread shrinks layer by layer, Kaiming's is kept."""
    from labbench.config import compose
    from labbench.train import run

    finals = {}
    for init in ("xavier_normal", "kaiming_normal"):
        record = run(compose([*fast_overrides(2), "data=synthetic", "model=mlp", "model.depth=12", "model.width=64", "norm=none",
                              f"init={init}", "activation=relu", "probes.init_activation_stats=true"]), tmp_path / init)
        final = record["metrics"]["final"]
        assert final["init/act_std_ratio"] == pytest.approx(final["init/act_std_last"] / final["init/act_std_first"], rel=1e-6)
        assert final["init/act_std_log_ratio"] == pytest.approx(abs(math.log(final["init/act_std_ratio"])), rel=1e-6)
        finals[init] = final
    assert finals["xavier_normal"]["init/act_std_ratio"] < 0.1  # halved at every ReLU layer: (1/2)^(11/2) ~ 0.02
    assert finals["kaiming_normal"]["init/act_std_log_ratio"] < finals["xavier_normal"]["init/act_std_log_ratio"]
