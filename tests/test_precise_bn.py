"""Precise BatchNorm statistics (issue 25): the estimate against a hand computation, training left
bit for bit as it was, the record saying what each evaluation read, and labbench's BatchNorm CNN
pinned to a plain PyTorch loop on the same batches."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import fast_overrides
from labbench.components.norms import Norm
from labbench.config import compose, run_id
from labbench.probes.precise_bn import PreciseBatchNorm, batchnorm_layers, evaluation_record, precise_statistics


def _net() -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():  # running statistics that are clearly not the estimate's
        net[1].running_mean.fill_(5.0)
        net[1].running_var.fill_(9.0)
        net[1].weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        net[1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return net


@pytest.mark.unit
def test_precise_statistics_are_the_plain_average_of_the_batch_statistics():
    net = _net()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=g) * 2 + 1,) for _ in range(5)]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()

    stats = precise_statistics(net, batches)

    # by hand: each layer's input in train-mode BatchNorm, dropout off; mean of the batch means and of the
    # unbiased batch variances
    lin1, bn1, lin2 = net[0], net[1], net[4]
    means1, vars1, means2, vars2 = [], [], [], []
    with torch.no_grad():
        for (x,) in batches:
            h = x @ lin1.weight.T + lin1.bias
            m, v = h.mean(0), h.var(0, unbiased=True)
            means1.append(m), vars1.append(v)
            a = ((h - m) / torch.sqrt(h.var(0, unbiased=False) + bn1.eps) * bn1.weight + bn1.bias).clamp_min(0)
            h2 = a @ lin2.weight.T + lin2.bias
            means2.append(h2.mean(0)), vars2.append(h2.var(0, unbiased=True))
    assert torch.allclose(stats["1"][0], torch.stack(means1).mean(0), atol=1e-6)
    assert torch.allclose(stats["1"][1], torch.stack(vars1).mean(0), atol=1e-6)
    assert torch.allclose(stats["5"][0], torch.stack(means2).mean(0), atol=1e-6)
    assert torch.allclose(stats["5"][1], torch.stack(vars2).mean(0), atol=1e-5)
    # the model itself, its mode and the global RNG are untouched
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and torch.equal(torch.get_rng_state(), rng)


@pytest.mark.unit
def test_precise_statistics_refuse_a_model_without_batchnorm_and_an_empty_source():
    with pytest.raises(ValueError, match="need a model with BatchNorm layers"):
        precise_statistics(nn.Linear(2, 2), [(torch.zeros(2, 2),)])
    with pytest.raises(ValueError, match="no batches"):
        precise_statistics(_net(), [])


@pytest.mark.unit
def test_the_callback_swaps_the_estimate_in_for_an_evaluation_and_restores_the_running_statistics():
    class Data:
        batch_size = 8

        def estimation_batches(self, batch_size, n, seed):
            g = torch.Generator().manual_seed(seed)
            return [(torch.randn(batch_size, 4, generator=g),) for _ in range(n)]

    class Trainer:
        datamodule, world_size = Data(), 2

        class strategy:  # noqa: N801 - stands for trainer.strategy
            precision_plugin = None

    class Module:
        model = _net()

    module, trainer = Module(), Trainer()
    saved = {k: v.clone() for k, v in module.model.state_dict().items()}
    callback = PreciseBatchNorm(batches=3, splits="test", seed=4)
    callback.on_validation_start(trainer, module)  # val is not covered: nothing swapped
    assert torch.equal(module.model[1].running_mean, saved["1.running_mean"])
    callback.on_test_start(trainer, module)
    expected = precise_statistics(_net(), Data().estimation_batches(4, 3, 4 + 7_654_321))  # the per-process batch: 8 / 2
    assert callback.used == {"batch_size": 4, "batches": 3}
    assert torch.allclose(module.model[1].running_mean, expected["1"][0]) and torch.allclose(module.model[5].running_var, expected["5"][1])
    callback.on_test_end(trainer, module)
    assert all(torch.equal(saved[k], v) for k, v in module.model.state_dict().items())


@pytest.mark.unit
def test_norm_options_are_checked_with_what_is_valid():
    assert Norm("batch", precise_batches=20).precise_splits == "both"
    with pytest.raises(ValueError, match="norm=group keeps none"):
        Norm("group", precise_batches=20)
    with pytest.raises(ValueError, match="whole number of batches"):
        Norm("batch", precise_batches=-1)
    with pytest.raises(ValueError, match="val, test or both"):
        Norm("batch", precise_batches=5, precise_splits="train")
    with pytest.raises(ValueError, match="apply to precise statistics only"):
        Norm("batch", precise_batch_size=32)
    with pytest.raises(ValueError, match="batch size >= 2"):
        Norm("batch", precise_batches=5, precise_batch_size=1)


@pytest.mark.unit
def test_running_statistics_keep_the_run_id_of_runs_stored_before_the_option():
    base = ["data=digits", "model=cnn", "norm=batch"]
    cfg = compose(base)
    assert run_id(cfg) == run_id(compose([*base, "norm.precise_batches=0"]))
    assert run_id(cfg) != run_id(compose([*base, "norm.precise_batches=20"]))
    assert evaluation_record(nn.Linear(2, 2), Norm("none")) is None
    assert evaluation_record(_net(), Norm("batch")) == {"val": "running", "test": "running"}
    assert evaluation_record(_net(), Norm("batch", precise_batches=20, precise_splits="test")) == {
        "val": "running", "test": "precise", "batches": 20, "batch_size": None,
    }


CNN = ["data=digits", "model=cnn", "model.channels=[8,16]", "norm=batch", "optimizer=sgd", "optimizer.momentum=0.9",
       "optimizer.lr=0.1", "data.batch_size=32"]


def test_precise_evaluation_trains_bit_for_bit_like_running_and_reads_other_statistics(tmp_path):
    from labbench.train import run

    common = [*CNN, *fast_overrides(60), "trainer.val_check_interval=20", "trainer.log_every_n_steps=5"]
    running = run(compose(common), tmp_path / "running")
    precise = run(compose([*common, "norm.precise_batches=5"]), tmp_path / "precise")
    assert running["curves"]["train/loss"] == precise["curves"]["train/loss"]  # every training step, bit for bit
    assert running["curves"]["val/acc"] != precise["curves"]["val/acc"]
    assert running["evaluation"]["batchnorm"] == {"val": "running", "test": "running"}
    assert precise["evaluation"]["batchnorm"] == {"val": "precise", "test": "precise", "batches": 5, "batch_size": None}
    # test-only precise statistics: validation reads the running ones, exactly as without the option
    test_only = run(compose([*common, "norm.precise_batches=5", "norm.precise_splits=test"]), tmp_path / "test-only")
    assert test_only["curves"]["val/acc"] == running["curves"]["val/acc"]
    assert test_only["metrics"]["final"]["test/acc"] == precise["metrics"]["final"]["test/acc"]


def test_precise_statistics_on_a_model_without_batchnorm_are_refused(tmp_path):
    from labbench.train import run

    with pytest.raises(ValueError, match="precise_batches=5"):
        run(compose(["data=digits", "model=mlp", "model.depth=0", "norm=batch", "norm.precise_batches=5", *fast_overrides(4)]), tmp_path)


def test_labbench_batchnorm_cnn_equals_a_plain_pytorch_loop_on_the_same_batches(tmp_path):
    """Lightning, the task and labbench's data and optimizer factories add nothing: the same init, the
    same batches and plain SGD give the same running statistics and test accuracy, with the running
    statistics and with precise ones estimated by hand from the same training batches."""
    import lightning as L
    from hydra.utils import instantiate

    from labbench.train import build

    steps = 40
    cfg = compose([*CNN, *fast_overrides(steps), "trainer.val_check_interval=1000", "norm.precise_batches=4"])
    datamodule, model, task = build(cfg)
    plain = copy.deepcopy(model)  # the same initial weights
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[PreciseBatchNorm(4, splits="test", seed=0)], enable_progress_bar=False)
    trainer.fit(task, datamodule=datamodule)
    (tested,) = trainer.test(task, datamodule=datamodule, verbose=False)
    lightning_acc = tested["test/acc"]

    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    batches = iter(_passes(datamodule.train_dataloader()))
    plain.train()
    for _ in range(steps):
        x, y = next(batches)
        optimizer.zero_grad()
        nn.functional.cross_entropy(plain(x), y).backward()
        optimizer.step()
    for (name, bn), (_, ours) in zip(batchnorm_layers(plain).items(), batchnorm_layers(model).items()):
        assert torch.allclose(bn.running_mean, ours.running_mean, atol=1e-5), name
        assert torch.allclose(bn.running_var, ours.running_var, rtol=1e-4, atol=1e-5), name
    x_test, y_test = datamodule.splits["test"]

    def accuracy(net):
        net.eval()
        with torch.no_grad():
            return float((net(x_test).argmax(-1) == y_test).float().mean())

    assert accuracy(copy.deepcopy(plain)) == pytest.approx(float(_running_acc(model, x_test, y_test)), abs=1e-9)
    # precise statistics by hand: reset, cumulative average over the same 4 estimation batches, dropout off
    estimator = copy.deepcopy(plain).eval()
    for bn in batchnorm_layers(estimator).values():
        bn.reset_running_stats(), setattr(bn, "momentum", None), bn.train()
    with torch.no_grad():
        for x, _ in datamodule.estimation_batches(32, 4, 0 + 7_654_321):
            estimator(x)
    assert accuracy(estimator) == pytest.approx(lightning_acc, abs=1.5 / len(y_test))  # within one image's float wobble
    L.seed_everything(0, verbose=False)


def _passes(loader):
    while True:
        yield from loader


def _running_acc(model, x, y):
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean()


@pytest.mark.unit
def test_a_spec_with_batchnorm_arms_must_say_which_statistics_they_are_evaluated_with(tmp_path):
    from test_ablation import write_spec

    from labbench.ablation import spec as specs
    from labbench.ablation.validation import validate

    arms = {"bn": ["norm=batch"], "gn": ["norm=group", "norm.groups=2"]}
    base = ["data=synthetic", "model.width=8", "trainer.max_steps=4"]
    hypotheses = [{"metric": "val/loss", "better": "gn", "worse": "bn", "direction": "lower"}]
    undeclared = write_spec(tmp_path, "undeclared", arms=arms, factors=["norm"], base=base, hypotheses=hypotheses)
    with pytest.raises(specs.SpecError, match=r"arm 'bn' has BatchNorm in profile 'smoke'.*batchnorm_eval"):
        validate(specs.load(undeclared))

    precise = {"statistics": "precise", "why": "the final weights"}
    disagrees = write_spec(tmp_path, "disagrees", arms=arms, factors=["norm"], base=base, hypotheses=hypotheses, batchnorm_eval=precise)
    with pytest.raises(specs.SpecError, match=r"says precise statistics.*norm.precise_batches=0: set norm.precise_batches"):
        validate(specs.load(disagrees))

    arms_precise = {**arms, "bn": ["norm=batch", "norm.precise_batches=3"]}
    agrees = write_spec(tmp_path, "agrees", arms=arms_precise, factors=["norm"], base=base, hypotheses=hypotheses, batchnorm_eval=precise)
    validate(specs.load(agrees))
    # a profile may decide otherwise than the spec; then the arms must follow it there
    per_profile = write_spec(tmp_path, "per-profile", arms=arms_precise, factors=["norm"], base=base, hypotheses=hypotheses, batchnorm_eval=precise,
                             profiles={"smoke": {"seeds": 3, "batchnorm_eval": {"statistics": "running", "why": "deployed"}}})
    with pytest.raises(specs.SpecError, match=r"says running statistics in profile 'smoke'.*drop norm.precise_batches"):
        validate(specs.load(per_profile))

    for bad, message in (({"statistics": "ema", "why": "x"}, "must be one of running, precise"),
                         ({"statistics": "running"}, "why is required")):
        with pytest.raises(specs.SpecError, match=message):
            specs.load(write_spec(tmp_path, "bad", arms=arms, factors=["norm"], base=base, hypotheses=hypotheses, batchnorm_eval=bad))


@pytest.mark.unit
def test_the_verdict_and_the_report_say_what_the_batchnorm_arms_read():
    from labbench.ablation import spec as specs
    from labbench.ablation.report import _batchnorm_lines
    from labbench.ablation.results import batchnorm_eval

    spec = specs.load("residual-degradation")  # a shipped spec that decided precise statistics, in its base
    read = {"val": "precise", "test": "precise", "batches": 20, "batch_size": None}
    records = {"plain-56": [None, {"evaluation": {"batchnorm": read}}], "residual-20": [{"evaluation": {"batchnorm": None}}]}
    bn = batchnorm_eval(spec, "quick", records)
    assert bn["statistics"] == "precise" and "lags each arm's final weights" in " ".join(bn["why"].split())
    assert bn["arms"] == {"plain-56": read}
    (line, _) = _batchnorm_lines(bn)
    assert line.startswith("BatchNorm evaluation: **precise** statistics.")
    assert "`plain-56`: val precise, test precise (20 training batches of the training batch)" in line
    assert batchnorm_eval(specs.load("adam-vs-sgd"), "quick", {"adam": [{"evaluation": {"batchnorm": None}}]}) is None


@pytest.mark.unit
def test_the_decision_is_hashed_through_the_arms_it_sets_not_through_its_prose():
    """A report is stale when what ran changes: the precise override on the arms does, the reason written beside
    the decision does not (validate keeps the two in agreement)."""
    import dataclasses

    from labbench.ablation import spec as specs

    spec = specs.load("residual-degradation")
    assert any("precise" in o for o in spec.raw["base"])
    reworded = dataclasses.replace(spec, raw={**spec.raw, "batchnorm_eval": {"statistics": "precise", "why": "other words"}})
    assert specs.fingerprint(reworded, "quick") == specs.fingerprint(spec, "quick")
    running = dataclasses.replace(spec, raw={**spec.raw, "base": [o for o in spec.raw["base"] if "precise" not in o]})
    assert specs.fingerprint(running, "quick") != specs.fingerprint(spec, "quick")
