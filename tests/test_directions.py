"""Metric directions are declared by whoever logs the metric; nothing is guessed from a name."""

from __future__ import annotations

import math

import pytest

from labbench.directions import UnknownMetric, direction, task_directions
from labbench.tasks.classify import ClassificationTask
from labbench.tasks.gan import GANTask
from labbench.tasks.vae import VAETask


@pytest.mark.parametrize("task,key,expected", [
    (ClassificationTask, "test/acc", "higher"),
    (ClassificationTask, "val/loss", "lower"),
    (ClassificationTask, "train/lr", "neither"),
    ("labbench.tasks.language_model.LanguageModelTask", "val/bpc", "lower"),
    (VAETask, "test/elbo", "higher"),  # a bound on log p(x): a name-based guess said "lower"
    (VAETask, "test/active_units", "higher"),
    (GANTask, "test/modes", "higher"),  # a name-based guess said "lower"
    (GANTask, "test/hq_share", "higher"),
    (GANTask, "test/mode_kl", "lower"),
    (GANTask, "train/g_grad_norm", "neither"),
    (ClassificationTask, "probe/loss_spikes", "lower"),
    (ClassificationTask, "init/act_std_ratio", "neither"),
    (ClassificationTask, "diverged", "lower"),
])
def test_declared_directions(task, key, expected):
    assert direction(key, task) == expected


def test_subclasses_inherit_and_extend():
    assert task_directions(GANTask)["loss"] == "lower" and task_directions(GANTask)["modes"] == "higher"


def test_undeclared_metric_is_a_clear_error():
    with pytest.raises(UnknownMetric, match=r"no direction is declared for metric 'test/accuracy' of ClassificationTask.*acc"):
        direction("test/accuracy", ClassificationTask)
    with pytest.raises(UnknownMetric, match="modes"):
        direction("test/modes", ClassificationTask)  # a classifier does not log modes


def test_failure_values_are_what_learning_nothing_gives():
    from labbench.config import compose
    from labbench.train import build

    _, _, task = build(compose(["data=digits"]))
    assert task.failure_values() == {"loss": pytest.approx(math.log(10)), "nll": pytest.approx(math.log(10)), "acc": pytest.approx(0.1)}
