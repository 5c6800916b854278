"""Shared test fixtures: compose configs, run trainings in a temp folder, call the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


CI_TIERS = ("catalog", "integration")  # run by CI (CI=true, as .ci/run is called there) or when asked for with -m

# The unit tier (`pytest -m unit`, about 2 minutes on 2 cores): modules of component tests against hand
# computations, no training run among them; single tests elsewhere carry @pytest.mark.unit themselves.
UNIT_MODULES = {
    "test_augment", "test_components", "test_configs", "test_data", "test_diffusion", "test_directions", "test_measures",
    "test_method_study", "test_metrics", "test_models", "test_resnet", "test_stats", "test_transformer",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in UNIT_MODULES:
            item.add_marker(pytest.mark.unit)
    _deselect_ci_tiers(config, items)


def _deselect_ci_tiers(config, items):
    """The CI tiers (``catalog``: a smoke reproduction of every named ablation; ``integration``: the
    slowest end-to-end runs) run in CI (``CI=true``) or when asked for (``-m catalog``, ``-m
    integration``); a plain local ``pytest`` leaves them out, so the default suite stays within its
    time budget as the catalog grows."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    asked = config.getoption("markexpr") or ""
    skip = [tier for tier in CI_TIERS if tier not in asked]
    deselected = [item for item in items if any(item.get_closest_marker(t) for t in skip)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never talk to a W&B server, whatever the developer's own settings."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread and slow down several-fold beside other jobs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_overrides(steps: int = 40) -> list[str]:
    """A short CPU run without W&B or progress bars: seconds, not minutes."""
    return [
        "logger=csv",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(1, steps // 2)}",
        "trainer.enable_progress_bar=false",
    ]


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script of this venv (e.g. ``labbench-train``) and capture its output."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
