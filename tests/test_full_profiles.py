"""Every arm of every full profile runs on this CPU, a few steps (issue 28, item 7).

The full profiles are written for one GPU and had never executed: every one composed
(`validate`), none had trained a step. Here each arm of each setting runs as written apart from
what a CPU test cannot give it: the device (``trainer.accelerator=cpu``), the budget (2 optimizer
steps, 2 evaluation batches, 2 batches for BatchNorm's precise statistics, a 16-token text sample) and the data where it names MNIST or CIFAR-10 (small stand-in files
in torchvision's own formats, `helpers_torchvision_files`; a subset of 500 where it asks for more). So a typo in a full profile, a model
too large to build, a key a GPU run would reject, fails here, before the first lent GPU spends
its minutes on it.

Marked ``slow``: on 2 shared cores most specs take 5 to 70 s, the 6-layer Transformer profiles several
minutes an arm (positional-encoding's bi-none: 225 s), so it runs on request, not in CI's 90 minutes.
"""

from __future__ import annotations

import pytest

from helpers_torchvision_files import write_cifar10, write_mnist
from labbench.ablation import spec as specs
from labbench.ablation.plan import planned_run
from labbench.config import compose
from labbench.train import run

from conftest import REPO

SHIPPED = specs.available()
# the versions waiting in docs/preregistered run their full profiles too: they are what a lent GPU will run next
PREREGISTERED = [str(p) for p in sorted((REPO / "docs" / "preregistered").glob("*.yaml"))]

# What a CPU test cannot give a GPU profile, and nothing else.
STAND_INS = [
    "trainer.accelerator=cpu",
    "trainer.max_steps=2",
    "trainer.max_epochs=null",
    "trainer.val_check_interval=2",
    "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2",
    "logger=csv",
    "trainer.enable_progress_bar=false",
]


def full_runs(spec: specs.Spec) -> list[tuple[str, list[str]]]:
    """(label, overrides) of every arm in every setting of the spec's full profile, seed 0, with the stand-ins; a tuned
    arm at the middle of its full grid (an arm that follows another's tuned value, at that arm's)."""
    out = []
    for one in [spec.in_setting(n) for n in spec.setting_names()] if spec.settings else [spec]:
        grid = one.tuning_grid("full") if one.tuning is not None else {}
        follow = dict(getattr(one.tuning, "follow", None) or {}) if one.tuning is not None else {}
        for arm in one.arms:
            values = grid.get(arm.name) or grid.get(follow.get(arm.name, ""), ())
            value = values[len(values) // 2] if values else None
            planned = planned_run(one, arm.name, "full", STAND_INS, 0, "final", value)
            out.append((f"{one.label}:{arm.name}", list(planned.overrides)))
    return out


@pytest.fixture(scope="module")
def stand_in_data(tmp_path_factory):
    """MNIST and CIFAR-10 in torchvision's formats, more training images than a full profile's largest batch (512);
    written once for the module. A profile's subset of the real set (data.train_size=5000) takes 500 of these."""
    data = tmp_path_factory.mktemp("data")
    write_mnist(data, n_train=1200, n_test=200)
    write_cifar10(data, per_batch=240, n_test=200)
    return data


@pytest.mark.slow  # minutes a spec for the Transformer profiles on 2 cores: `pytest -m slow tests/test_full_profiles.py`
@pytest.mark.parametrize("name", SHIPPED + PREREGISTERED, ids=lambda n: n if "/" not in n else "preregistered/" + n.rsplit("/", 1)[1][:-5])
def test_every_arm_of_the_full_profile_trains_two_steps_on_the_cpu(name, tmp_path, monkeypatch, one_thread, stand_in_data):
    monkeypatch.setenv("LABBENCH_DATA_DIR", str(stand_in_data))
    failures = []
    for label, overrides in full_runs(specs.load(name)):
        cfg = compose(overrides)
        run_stand_ins = []  # the data, and the share of the evaluation budget that depends on the config
        if str(cfg.data.get("_target_", "")).endswith(".CIFAR10"):
            run_stand_ins.append("data.verify_checksums=false")  # the stand-in files are not the published ones
        if (cfg.data.get("train_size") or 0) > 500:  # a subset of the real data set: of the stand-in, a smaller one
            run_stand_ins.append("data.train_size=500")
        if (cfg.get("norm") or {}).get("precise_batches", 0) > 2:  # part of the evaluation budget, like limit_val_batches
            run_stand_ins.append("norm.precise_batches=2")
        if (cfg.task.get("sample_length") or 0) > 16:  # a language model's text sample: one forward pass per character
            run_stand_ins.append("task.sample_length=16")
        if run_stand_ins:
            cfg = compose([*overrides, *run_stand_ins])
        record = run(cfg, tmp_path / label.replace("/", "_").replace(":", "_"))
        if record["status"] not in ("completed", "diverged"):
            failures.append(f"{label}: {record['status']}: {(record.get('error') or {}).get('message')}")
    assert not failures, "\n".join(failures)
