"""The run record: ``run.json`` written atomically, with results and provenance."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_NAME = "run.json"


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``.

    A reader sees either the old file or the new one, never a half-written one, even
    if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_json_safe(obj), f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RECORD_NAME).read_text())


def _json_safe(obj: Any) -> Any:
    """Non-finite floats become the strings "nan" / "inf" / "-inf" (strict JSON has none)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # how _json_safe stores them


def from_json_safe(obj: Any) -> Any:
    """The inverse of :func:`_json_safe`: the strings "nan" / "inf" / "-inf" back to floats."""
    if isinstance(obj, dict):
        return {k: from_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_json_safe(v) for v in obj]
    return NON_FINITE.get(obj, obj) if isinstance(obj, str) else obj


def read_curves(metrics_csv: str | Path) -> dict[str, list[list[float]]]:
    """Lightning CSVLogger's sparse ``metrics.csv`` -> ``{metric: [[step, value], ...]}``."""
    path = Path(metrics_csv)
    curves: dict[str, list[list[float]]] = {}
    if not path.is_file():
        return curves
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                curves.setdefault(key, []).append([step, float(value)])
    return curves


def summarize_curves(
    curves: dict[str, list[list[float]]], directions: dict[str, str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Final value of every curve, and the best value of each val curve by its declared direction.

    ``directions``: key -> lower / higher / neither (:mod:`labbench.directions`); a curve
    with no better side, or none declared, has no best.
    """
    final = {key: points[-1][1] for key, points in curves.items() if points}
    best: dict[str, dict[str, float]] = {}
    for key, points in curves.items():
        if not key.startswith("val/") or directions.get(key) not in ("lower", "higher"):
            continue
        finite = [p for p in points if math.isfinite(p[1])]
        if not finite:
            continue
        pick = max if directions[key] == "higher" else min
        step, value = pick(finite, key=lambda p: p[1])
        best[key] = {"value": value, "step": step}
    return final, best


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(accelerator: str, precision: str, seed: int) -> dict[str, Any]:
    """Where and with what a run was computed: code version, packages, hardware."""
    import torch

    commit = _git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git("status", "--porcelain", "--untracked-files=no"))
    device: dict[str, Any] = {"accelerator": accelerator, "cpu": _cpu_name(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available() and accelerator in ("gpu", "cuda", "auto"):
        device["gpu"] = torch.cuda.get_device_name(0)
        device["gpu_count"] = torch.cuda.device_count()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in ("labbench", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "numpy", "tokenizers")},
        },
        "platform": platform.platform(),
        "hostname": platform.node(),
        "device": device,
        "precision": str(precision),
        "seed": seed,
        "command": sys.argv,
    }
