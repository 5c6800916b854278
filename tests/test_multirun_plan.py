"""An ablation's plan launched as Hydra multiruns lands in the same store, under the same run ids."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import BIN
from labbench.ablation import engine
from labbench.ablation import spec as specs
from labbench.ablation.multirun import multirun_commands
from labbench.ablation.store import Store


def _launch(commands, cwd):
    for command in commands:
        proc = subprocess.run(
            [str(BIN / command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=300,
            env={**os.environ, "WANDB_MODE": "offline"},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["aa-control", "adam-vs-sgd"])
def test_multirun_commands_fill_the_store_that_reproduce_reads(name, tmp_path):
    spec = specs.load(name)
    spec = spec.in_setting(spec.setting_names()[0]) if spec.settings else spec  # a claim with settings: plan one of them
    store = Store(tmp_path / "runs", spec.store_name, "smoke")
    stages = []
    for _ in range(2 + (spec.tuning.extend if spec.tuning else 0)):
        stage, commands = multirun_commands(spec, "smoke", store, wandb=False)
        stages.append(stage)
        # one multirun per arm at the final stage; under nested tuning one per arm and value its seeds run at
        nested = spec.tuning is not None and spec.tuning.nested
        assert (stage == "tune" or (len(commands) >= len(spec.arms) if nested else len(commands) == len(spec.arms))) \
            and all(c[:2] == ["labbench-train", "-m"] for c in commands)
        _launch(commands, tmp_path)
        if stage == "final":
            break
    assert stages[-1] == "final" and stages[:-1] == ["tune"] * (len(stages) - 1) and (len(stages) > 1) == (spec.tuning is not None)
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "runs", wandb=False)
    assert outcome.counts["completed"] == 0  # every run came from the multiruns, a tuning walk past an edge included
    assert outcome.counts["skipped"] == len(outcome.plan.final_runs) + len(outcome.plan.tuning_runs) >= engine.count_runs(spec, "smoke")
