"""Sweeps for nuisance tuning: what ``labbench-train -m`` hands a Hydra sweeper, and the
per-arm summary written when the sweep ends.

Any Hydra sweeper ranks runs by the value the app returns: here ``sweep.objective`` of the
run (a metric expression such as ``val/loss:min``), with ``sweep.direction``. A run that
diverged or failed scores the worst value there is (``inf`` when minimizing), so no search
settles on a setting because it blew up before its loss got bad. The grid (Hydra's basic
sweeper) and Optuna's TPE (``hydra/sweeper=tpe``) both work from the command line.

Per-arm tuning: the swept keys listed in ``sweep.tune`` are nuisance parameters, every
other swept key (but the seed) names an arm. :class:`SweepSummary`, a Hydra callback, reads
the sweep's run records at the end and writes ``sweep_summary.json`` beside them: per arm,
the tuned values with the best mean objective over seeds, and whether they lie on the edge
of what was tried.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from labbench.ablation.metrics import metric_value, parse_metric
from labbench.config import flatten
from labbench.record import RECORD_NAME, write_json_atomic

DIRECTIONS = ("minimize", "maximize")
SUMMARY_NAME = "sweep_summary.json"


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"sweep.direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")


def worst(direction: str) -> float:
    check_direction(direction)
    return math.inf if direction == "minimize" else -math.inf


def objective_value(record: dict[str, Any] | None, objective: str, direction: str) -> float:
    """The run's score for a sweeper: the objective of a completed run, else the worst value."""
    check_direction(direction)
    if record is None or record.get("status") != "completed":
        return worst(direction)
    key = parse_metric(objective).key
    if key not in record.get("curves", {}):
        logged = ", ".join(sorted(k for k in record.get("curves", {}) if k.startswith("val/"))) or "none"
        raise ValueError(f"sweep.objective={objective}: this run logged no {key}; its validation metrics: {logged}. "
                         "Set sweep.objective (and sweep.direction) to one of them")
    value = metric_value(record, objective)
    return value if math.isfinite(value) else worst(direction)


def swept_keys(hydra_cfg: DictConfig) -> list[str]:
    """Keys the sweep varies: sweep overrides on the command line, and a sweeper's ``params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()]  # without a +/++ prefix
    params = hydra_cfg.sweeper.get("params") or {}
    keys += [k for k in params if k not in keys]
    return keys


def setting(record: dict[str, Any], key: str) -> Any:
    """A record's value of a swept key: the option of a config group, else the config value."""
    if key in record.get("choices", {}):
        return record["choices"][key]
    return flatten(record.get("config", {})).get(key)


def summarize(records: list[dict[str, Any]], keys: list[str], tune: list[str], objective: str, direction: str) -> dict[str, Any]:
    """Per arm, the best setting of the ``tune`` keys by mean objective over the arm's seeds (:mod:`labbench.tuning`)."""
    from labbench.tuning import best_setting, on_edge

    from labbench.ablation.results import tuning_value

    check_direction(direction)
    better = "lower" if direction == "minimize" else "higher"
    tune = [k for k in tune if k in keys]
    arm_keys = [k for k in keys if k not in tune and k != "seed"]
    scores: dict[str, dict[str, list[float]]] = {}
    arms: dict[str, dict[str, Any]] = {}
    settings: dict[str, dict[str, Any]] = {}
    for record in records:
        arm = {k: setting(record, k) for k in arm_keys}
        tuned = {k: setting(record, k) for k in tune}
        arm_id, tuned_id = json.dumps(arm, sort_keys=True, default=str), json.dumps(tuned, sort_keys=True, default=str)
        arms[arm_id], settings[tuned_id] = arm, tuned
        scores.setdefault(arm_id, {}).setdefault(tuned_id, []).append(tuning_value(record, objective, better))
    out = []
    for arm_id, by_setting in scores.items():
        best_id, means = best_setting(by_setting, better)
        best = settings[best_id] if best_id is not None else {}
        out.append({
            "arm": arms[arm_id],
            "best": best,
            "objective": means[best_id] if best_id is not None else worst(direction),
            "runs": sum(len(v) for v in by_setting.values()),
            "on_edge": [k for k, v in best.items() if on_edge(v, [settings[t][k] for t in by_setting])],
            "tried": [{"setting": settings[t], "objective": m, "seeds": len(by_setting[t])} for t, m in means.items()],
        })
    return {"objective": objective, "direction": direction, "tuned": tune, "arm_keys": arm_keys, "arms": out}


def read_records(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(sweep_dir).glob(f"*/{RECORD_NAME}"))]


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write and print the per-arm tuning summary."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = read_records(sweep_dir)
        if not records or "sweep" not in config:
            return
        tune = list(config.sweep.get("tune") or [])
        summary = summarize(records, swept_keys(config.hydra), tune, config.sweep.objective, config.sweep.direction)
        write_json_atomic(sweep_dir / SUMMARY_NAME, summary)
        print_summary(summary, sweep_dir / SUMMARY_NAME)


def print_summary(summary: dict[str, Any], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"best {', '.join(summary['tuned']) or 'setting'} per arm by {summary['objective']} ({summary['direction']})")
    for key in summary["arm_keys"]:
        table.add_column(key)
    table.add_column("best")
    table.add_column(summary["objective"], justify="right")
    table.add_column("runs", justify="right")
    for arm in summary["arms"]:
        best = ", ".join(f"{k}={v}" for k, v in arm["best"].items()) or "-"
        if arm["on_edge"]:
            best += " (edge of what was tried)"
        table.add_row(*(str(arm["arm"][k]) for k in summary["arm_keys"]), best, f"{arm['objective']:.4g}", str(arm["runs"]))
    console = Console()
    console.print(table)
    console.print(f"summary  {path}")

