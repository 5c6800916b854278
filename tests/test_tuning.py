"""One rule chooses a nuisance setting per arm, for ablations and for command-line sweeps alike."""

from __future__ import annotations

import math

import pytest

from labbench.tuning import best_setting, mean_scores, on_edge


def test_best_mean_wins_and_nothing_that_blew_up_does():
    scores = {"0.3": [0.2, math.inf], "0.1": [0.5, 0.5], "0.03": [0.3, 0.35], "0.01": [math.nan, math.nan]}
    best, means = best_setting(scores, "lower")
    assert best == "0.03" and means["0.03"] == pytest.approx(0.325)
    assert means["0.3"] == math.inf and math.isnan(means["0.01"])  # diverged without a failure value; all failed
    assert best_setting({"a": [0.8], "b": [0.9, math.nan]}, "higher")[0] == "b"  # a failed run is left out, not scored
    assert best_setting({"a": [math.nan]}, "lower")[0] is None
    assert best_setting({"a": [1.0], "b": [1.0]}, "lower")[0] == "a"  # ties: the first listed
    with pytest.raises(ValueError, match="lower or higher"):
        best_setting({"a": [1.0]}, "minimize")
    assert mean_scores({"a": [1.0, 3.0]}) == {"a": 2.0}


def test_edge_of_what_was_tried():
    assert on_edge(0.03, [0.3, 0.1, 0.03]) and on_edge(0.3, [0.3, 0.1]) and not on_edge(0.1, [0.3, 0.1, 0.03])
    assert not on_edge(0.1, [0.1])  # one value tried: no edge to speak of
    assert not on_edge("adam", ["adam", "sgd"])
