"""The one-screen human summary printed at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

_STATUS_STYLE = {"completed": "bold green", "diverged": "bold yellow", "failed": "bold red"}
_SHOWN_METRICS = ("test/acc", "test/loss", "test/bpc", "val/acc", "val/loss", "val/bpc", "train/loss")
_SAMPLE_METRICS = (  # generative runs: the quality of their samples at test time
    "test/elbo", "test/recon", "test/kl", "test/active_units", "test/modes", "test/hq_share",
    "test/sharpness_ratio", "test/confidence", "test/class_entropy", "test/d_acc_real", "test/d_acc_fake",
)


def _short(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def print_summary(record: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    cfg = record["config"]
    choices = {k: v for k, v in record.get("choices", {}).items() if not k.startswith("hydra") and v}
    what = Table.grid(padding=(0, 2))
    what.add_column(style="dim")
    what.add_column()
    what.add_row("run", f"{record['run_id']}  [{_STATUS_STYLE.get(record['status'], '')}]{record['status']}[/]")
    if choices:
        what.add_row("composed", "  ".join(f"{k}={v}" for k, v in sorted(choices.items())))
    data = record.get("data", {})
    if data:
        splits = ", ".join(f"{k} {v}" for k, v in data["splits"].items())
        what.add_row("data", f"{splits}; input {tuple(data['input_shape'])}")
    if "model" in record:
        what.add_row("model", f"{record['model']['parameters']:,} parameters")
    what.add_row("optimizer", f"{cfg['optimizer']['_target_'].rsplit('.', 1)[-1]} lr={cfg['optimizer'].get('lr')}")
    what.add_row("budget", f"{record['steps']} steps in {record['wall_time_s']:.1f} s, seed {cfg['seed']}")
    if record.get("divergence"):
        what.add_row("diverged", f"at step {record['divergence']['step']}: {record['divergence']['reason']}")
    if record.get("error"):
        what.add_row("error", f"{record['error']['type']}: {record['error']['message']}")

    metrics = Table(title="final metrics", title_justify="left", show_edge=False)
    metrics.add_column("metric")
    metrics.add_column("final", justify="right")
    metrics.add_column("best (step)", justify="right")
    final, best = record["metrics"]["final"], record["metrics"]["best"]
    for key in (*_SHOWN_METRICS, *_SAMPLE_METRICS):
        if key in final:
            b = best.get(key)
            metrics.add_row(key, _fmt(final[key]), f"{_fmt(b['value'])} ({b['step']})" if b else "")

    files = record.get("files", {})
    where = Table.grid(padding=(0, 2))
    where.add_column(style="dim")
    where.add_column()
    where.add_row("record", _short(f"{files.get('output_dir')}/run.json"))
    if files.get("csv"):
        where.add_row("curves", _short(files["csv"]))
    for name, file in (record.get("figures") or {}).items():
        where.add_row(name, _short(f"{files.get('output_dir')}/{file}"))
    if files.get("wandb"):
        where.add_row("W&B", _short(files["wandb"]))

    console.print(Panel(what, title="labbench run", title_align="left"))
    console.print(metrics)
    if record.get("sample"):
        console.print(Panel(record["sample"].strip("\n")[:400], title="sample (end of training)", title_align="left"))
    console.print(where)
    if files.get("wandb"):  # whole, never cut with an ellipsis: it is meant to be copied (soft_wrap: the terminal wraps it)
        console.print(f"upload to W&B (an account and a network): wandb sync {_short(files['wandb'])}", soft_wrap=True, highlight=False)
