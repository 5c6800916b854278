"""The same plan as Hydra multirun commands, for any Hydra launcher (joblib, Slurm, ...).

Each command sweeps one arm's seeds (or its tuning grid) with ``labbench-train -m`` and
writes every run into the ablation's store, in a folder named by its run id: the id the
engine computes for the same run. ``labbench reproduce`` afterwards finds them done and
only aggregates. Tuning comes first (with ``tuning.extend``, further tuning stages for the
arms whose best value sits on their grid's edge); once its runs are stored, the same call
prints the final stage with each arm's tuned value.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from labbench.ablation.plan import arm_overrides, final_seeds, final_value, logging_overrides, merge_overrides, tuning_seeds
from labbench.ablation.results import pending_tuning
from labbench.ablation.spec import Spec, format_value
from labbench.ablation.store import Store


def _values(values) -> str:
    return ",".join(format_value(v) for v in values)


def multirun_commands(
    spec: Spec, profile: str, store: Store, extra: Sequence[str] = (), seeds: int | None = None, wandb: bool = True
) -> tuple[str, list[list[str]]]:
    """``(stage, commands)`` for the first stage of the plan that is not yet complete."""
    pending, _, tuned = pending_tuning(spec, profile, extra, store)
    stage = "tune" if pending else "final"
    tags = [t for t in (spec.claim_id, profile) if t]
    commands = []
    for arm in spec.arms:
        if stage == "tune":
            values = list(dict.fromkeys(r.tuned_value for r in pending if r.arm == arm.name))
            if not values:
                continue  # this arm's tuning is complete; another's walks past its grid's edge
            seed_list = tuning_seeds(spec, arm.name)
            if len(spec.tuning.params) == 1:
                sweeps = [[f"{spec.tuning.param}={_values(values)}"]]
            else:  # a joint grid is a list of value tuples, not a product: one command per tuple
                sweeps = [spec.tuning.assignments(v) for v in values]
            sweeps = [[*sweep, "evaluate_test=false"] for sweep in sweeps]
        else:
            seed_list = [s + arm.seed_offset for s in final_seeds(spec, profile, seeds)]
            sweeps = [spec.tuning.assignments(tuned[arm.name]["value"]) if arm.name in tuned else []]
            if arm.name in tuned and spec.tuning.nested:  # each seed at its own block's choice: one command per seed
                reporting = logging_overrides(spec.name, arm.name, tags, wandb)
                for i, seed in enumerate(seed_list):
                    specific = spec.tuning.assignments(final_value(spec, tuned, arm.name, i))
                    overrides = merge_overrides(arm_overrides(spec, arm.name, profile, extra), [f"seed={seed}", *specific], reporting)
                    commands.append(["labbench-train", "-m", *overrides, *into_store(store)])
                continue
        reporting = logging_overrides(spec.name, arm.name, tags, wandb)
        for specific in sweeps:
            overrides = merge_overrides(arm_overrides(spec, arm.name, profile, extra), [f"seed={_values(seed_list)}", *specific], reporting)
            commands.append(["labbench-train", "-m", *overrides, *into_store(store)])
    return stage, commands


def into_store(store: Store) -> list[str]:
    """Overrides that make a sweep write each run into the ablation's store, under its run id.

    The store's runs are aggregated by the ablation, so the sweep's own per-arm summary
    (which would read every run in the shared folder) is switched off.
    """
    return [f"hydra.sweep.dir={store.runs_dir}", "hydra.sweep.subdir=${labbench.run_id:}", "~hydra.callbacks.sweep_summary"]


def shell(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
