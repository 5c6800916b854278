"""Experiment loggers: W&B in offline mode unless the user has configured W&B."""

from __future__ import annotations

import csv
import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.utilities import rank_zero_only

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_configured() -> bool:
    """True when this user can sync to a W&B server: an API key in the env or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """``auto``: the WANDB_MODE env var if set, else online with credentials, else offline."""
    if mode not in WANDB_MODES:
        raise ValueError(f"unknown W&B mode {mode!r}; valid: {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_configured() else "offline"


def wandb_note(runs_dir: Path, group: str) -> str:
    """One line for the end of an ablation: where its W&B runs went and how to see them (no silence about W&B)."""
    mode = resolve_wandb_mode("auto")
    if mode == "disabled":
        return "W&B: disabled (WANDB_MODE=disabled): CSV curves only; the report and `labbench site` are the view."
    if mode == "online":
        return f"W&B: online, project labbench, group {group} (one W&B run per training run, job type = arm)."
    return (f"W&B: offline (no account or server configured): each run's W&B files are under {runs_dir}/<run id>/wandb. "
            f"A dashboard needs an account and a network, or a self-hosted server (WANDB_BASE_URL); then: "
            f"wandb sync {runs_dir}/*/wandb/offline-run-*  Without one, the report and `labbench site` are the offline view.")


def wandb_logger(
    save_dir: str,
    project: str = "labbench",
    mode: str = "auto",
    entity: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
):
    """Lightning's WandbLogger with labbench's defaults (offline without an account)."""
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        mode=resolve_wandb_mode(mode),
        entity=entity,
        group=group,
        job_type=job_type,
        tags=list(tags) or None,
        # No system-metrics sampler and no console capture: labbench runs are short and many.
        settings=wandb.Settings(x_disable_stats=True, console="off", silent=True),
    )
    # Lightning always passes ``anonymous`` (None unless asked for) to wandb.init, and wandb >= 0.19 warns
    # "The anonymous setting has no effect" for any value, at every run: the setting is gone, so drop it.
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb(loggers: Sequence[object], failed: bool) -> None:
    """Close every W&B run these loggers started, marking a failed run as such."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger._experiment.finish(exit_code=1 if failed else 0)



class CSVLogger(LightningCSVLogger):
    """Lightning's CSV logger, safe when fit and test run in different processes.

    Under ``ddp_spawn`` each stage runs in freshly spawned processes holding a copy of
    the logger made before the first one: the copy does not know the columns an earlier
    stage wrote, and Lightning's writer then fails to rewrite the header. Reading the
    file's header first keeps every column.
    """

    @rank_zero_only
    def save(self) -> None:
        writer = self.experiment
        if os.path.isfile(writer.metrics_file_path):
            with open(writer.metrics_file_path, newline="") as file:
                header = next(csv.reader(file), [])
            writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))
        super().save()
