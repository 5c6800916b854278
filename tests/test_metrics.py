"""Metric expressions read the right number from a run record."""

from __future__ import annotations

import math

import pytest

from labbench.ablation.metrics import metric_value, parse_metric

RECORD = {
    "metrics": {"final": {"test/acc": 0.9, "train/loss": 0.1}},
    "curves": {"train/loss": [[9, 2.0], [19, 1.0], [29, 0.5], [39, 0.1]], "val/loss": [[19, 0.8], [39, "nan"]]},
}


@pytest.mark.parametrize(
    "expr,value",
    [
        ("test/acc", 0.9),
        ("train/loss@20", 1.0),
        ("train/loss@29", 0.5),
        ("train/loss[-2:]", 0.3),
        ("train/loss:min", 0.1),
        ("train/loss:max", 2.0),
        ("val/loss:min", 0.8),
    ],
)
def test_expressions(expr, value):
    assert metric_value(RECORD, expr) == pytest.approx(value)


def test_missing_metric_is_nan():
    assert math.isnan(metric_value(RECORD, "test/loss"))
    assert math.isnan(metric_value(RECORD, "train/loss@5"))


@pytest.mark.parametrize("bad", ["train/loss@", "train/loss[-a:]", "train/loss:mean", "a b"])
def test_bad_expression_says_what_is_valid(bad):
    with pytest.raises(ValueError, match="valid forms"):
        parse_metric(bad)
