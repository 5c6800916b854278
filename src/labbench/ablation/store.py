"""Where an ablation's runs live: ``<root>/<name>/<profile>/runs/<run id>/run.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labbench.record import RECORD_NAME, write_json_atomic

DONE = ("completed", "diverged", "failed")  # outcomes; "interrupted" or no record means: run it


def default_root() -> Path:
    return Path(os.environ.get("LABBENCH_OUTPUT_DIR", "outputs")) / "ablations"


class Store:
    def __init__(self, root: str | Path, name: str, profile: str) -> None:
        self.dir = Path(root) / name / profile
        self.runs_dir = self.dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def record(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / RECORD_NAME
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, run_id: str, retry_failed: bool = False) -> bool:
        record = self.record(run_id)
        if record is None:
            return False
        done = ("completed", "diverged") if retry_failed else DONE
        return record.get("status") in done

    @property
    def plan_path(self) -> Path:
        return self.dir / "plan.json"

    def save_plan(self, plan: dict) -> None:
        write_json_atomic(self.plan_path, plan)

    def load_plan(self) -> dict:
        if not self.plan_path.is_file():
            raise FileNotFoundError(
                f"no stored runs for this ablation and profile: {self.plan_path} is missing; "
                f"run `labbench reproduce` first (or pass the --out folder it used)"
            )
        return json.loads(self.plan_path.read_text())
