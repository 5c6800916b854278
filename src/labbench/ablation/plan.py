"""From a spec and a profile to the list of runs: arms x seeds, after per-arm tuning.

A planned run is nothing but a list of Hydra overrides; its id is the hash of the config
they compose to, so the plan, the store and resume all agree on what a run is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labbench.ablation.spec import Spec, SpecError, as_setting
from labbench.config import compose, flatten, identity_config, run_id

TUNING_SEED_BASE = 1000  # tuning runs use their own seeds, so final seeds are not the ones selected on


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(*groups: Iterable[str]) -> tuple[str, ...]:
    """Concatenate override lists; a later value for the same key replaces the earlier one."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            key = override_key(override)
            merged.pop(key, None)
            merged[key] = override
    return tuple(merged.values())




def logging_overrides(
    group: str, arm: str, tags: Sequence[str], wandb: bool, seed: int | str | None = None, stage: str | None = None
) -> list[str]:
    """Loggers and progress bars: not part of a run's identity (its id stays the same).

    The one place ``reproduce`` and ``labbench plan`` take them from; a sweep over seeds
    (``seed`` None) leaves the W&B run name to W&B.
    """
    common = ["trainer.enable_progress_bar=false"]
    if not wandb:
        return [*common, "logger=csv"]
    tag_list = ",".join(tags)
    return [
        *common,
        f"logger.wandb.group={group}",
        f"logger.wandb.job_type={arm}",
        f"logger.wandb.tags=[{tag_list}]",
        *([f"logger.wandb.name={arm}-{stage}-s{seed}"] if seed is not None else []),
    ]


@dataclass(frozen=True)
class PlannedRun:
    arm: str
    seed: int
    stage: str  # "tune" (validation only) or "final"
    overrides: tuple[str, ...]
    run_id: str
    tuned_value: Any = None

    def as_dict(self) -> dict:
        return {"arm": self.arm, "seed": self.seed, "stage": self.stage, "run_id": self.run_id,
                "tuned_value": self.tuned_value, "overrides": list(self.overrides)}


@dataclass
class Plan:
    """Everything ``report`` needs to find an ablation's runs again."""

    name: str
    profile: str
    seeds: list[int]
    extra_overrides: list[str]
    tuning_runs: list[PlannedRun] = field(default_factory=list)
    final_runs: list[PlannedRun] = field(default_factory=list)
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> {value, scores, on_edge}

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "profile": self.profile,
            "seeds": self.seeds,
            "extra_overrides": self.extra_overrides,
            "tuned": self.tuned,
            "tuning_runs": [r.as_dict() for r in self.tuning_runs],
            "final_runs": [r.as_dict() for r in self.final_runs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        def runs(items):
            return [PlannedRun(r["arm"], r["seed"], r["stage"], tuple(r["overrides"]), r["run_id"], as_setting(r.get("tuned_value")))
                    for r in items]

        tuned = {arm: {**info, "value": as_setting(info.get("value")),
                       **({"per_block": [as_setting(v) for v in info["per_block"]]} if "per_block" in info else {})}
                 for arm, info in d["tuned"].items()}
        return cls(d["name"], d["profile"], d["seeds"], d["extra_overrides"], runs(d["tuning_runs"]), runs(d["final_runs"]), tuned)


def arm_overrides(spec: Spec, arm: str, profile: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """base, then profile, then arm, then the user's command-line overrides (later wins)."""
    p = spec.profile(profile)
    return merge_overrides(spec.base, p.overrides, spec.arm(arm).overrides, p.arm_overrides.get(arm, ()), extra)


def planned_run(spec: Spec, arm: str, profile: str, extra: Sequence[str], seed: int, stage: str, tuned_value: Any = None) -> PlannedRun:
    specific = [f"seed={seed}"]
    if spec.tuning is not None and tuned_value is not None:
        specific += spec.tuning.assignments(tuned_value)
    if stage == "tune":
        specific.append("evaluate_test=false")
    overrides = merge_overrides(arm_overrides(spec, arm, profile, extra), specific)
    try:
        cfg = compose(overrides)
    except Exception as err:
        raise SpecError(f"{spec.name}: arm {arm!r} does not compose with overrides {list(overrides)}: {err}") from err
    return PlannedRun(arm, seed, stage, overrides, run_id(cfg), tuned_value)


def final_seeds(spec: Spec, profile: str, seeds: int | None = None) -> list[int]:
    if seeds is not None and seeds < 1:
        raise SpecError(f"--seeds must be at least 1 (paired seeds per arm), got {seeds}; "
                        f"the {profile!r} profile of {spec.name} uses {spec.profile(profile).seeds}")
    return list(range(seeds if seeds is not None else spec.profile(profile).seeds))


def tuning_seeds(spec: Spec, arm: str) -> list[int]:
    """An arm's tuning seeds: ``repeats`` disjoint blocks of ``seeds`` each, apart from the final seeds.

    Block b holds TUNING_SEED_BASE + b x seeds + 0..seeds-1 (plus the arm's seed offset):
    block 0 is the single block of a spec without repeats.
    """
    if spec.tuning is None:
        return []
    t = spec.tuning
    return [TUNING_SEED_BASE + i + spec.arm(arm).seed_offset for i in range(t.seeds * t.repeats)]


def tuning_block(spec: Spec, arm: str, seed: int) -> int:
    """Which block of tuning seeds ``seed`` belongs to (see :func:`tuning_seeds`)."""
    return (seed - TUNING_SEED_BASE - spec.arm(arm).seed_offset) // spec.tuning.seeds


def tuning_runs(spec: Spec, profile: str, extra: Sequence[str]) -> list[PlannedRun]:
    if spec.tuning is None:
        return []
    runs = []
    grid = spec.tuning_grid(profile)
    for arm in spec.arms:
        for value in grid.get(arm.name, ()):  # an arm the grid leaves out is not tuned
            for seed in tuning_seeds(spec, arm.name):
                runs.append(planned_run(spec, arm.name, profile, extra, seed, "tune", value))
    return runs


def final_value(spec: Spec, tuned: dict[str, dict], arm: str, index: int) -> Any:
    """The tuned value the final run of ``arm``'s ``index``-th seed takes: the arm's choice, or under ``tuning.nested``
    the choice on the arm's own ``index``-th block of tuning seeds (the pooled choice where every run of that block
    failed, so the block chose nothing)."""
    info = tuned.get(arm, {})
    if spec.tuning is None or not spec.tuning.nested or "per_block" not in info:
        return info.get("value")
    blocks = info["per_block"]
    if index >= len(blocks):
        raise SpecError(f"{spec.name}: tuning.nested gives each final seed its own block of tuning seeds, and there are "
                        f"{len(blocks)} blocks (tuning.repeats) for seed #{index + 1}: run at most {len(blocks)} seeds, "
                        "or raise tuning.repeats")
    return blocks[index] if blocks[index] is not None else info.get("value")


def final_runs(spec: Spec, profile: str, extra: Sequence[str], seeds: list[int], tuned: dict[str, dict]) -> list[PlannedRun]:
    return [
        planned_run(spec, arm.name, profile, extra, seed + arm.seed_offset, "final", final_value(spec, tuned, arm.name, i))
        for arm in spec.arms
        for i, seed in enumerate(seeds)
    ]


def arm_differences(spec: Spec, profile: str, extra: Sequence[str] = (), resolve: bool = False) -> dict[str, dict[str, Any]]:
    """Flat keys whose values differ between arms (seed fixed): key -> {arm: value}."""
    flats = {}
    for arm in spec.arms:
        cfg = compose(merge_overrides(arm_overrides(spec, arm.name, profile, extra), ["seed=0"]))
        flats[arm.name] = flatten(identity_config(cfg, resolve=resolve))
    keys = sorted(set().union(*flats.values()))
    return {
        key: {arm: flat.get(key, "<absent>") for arm, flat in flats.items()}
        for key in keys
        if len({repr(flat.get(key, "<absent>")) for flat in flats.values()}) > 1
    }
