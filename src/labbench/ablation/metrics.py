"""Metric expressions: how an ablation reads one number from a run record.

    test/acc            the final value of a logged metric
    train/loss@100      the last value logged at or before step 100 (early training)
    train/loss@0:100    the mean of the values logged at steps 0 to 100 (an early window:
                        steadier than one minibatch's loss)
    train/loss@0:200:noise  the step-to-step noise of the values logged in the window: the
                        standard deviation of the successive differences over sqrt(2) (after
                        von Neumann 1941), which is the noise's own std for white noise around
                        a linear trend and ignores the trend a plain std would mix in (how
                        noisy are the minibatch losses?)
    train/loss[-5:]     the mean of the last 5 logged values (smooths batch noise)
    val/loss:min        the best (min or max) value over the run
    val/loss:rise       the last value minus the lowest one: how far the curve turned back up
                        after its best point (0 when it never did; early stopping's signal)
    val/acc:drop        the highest value minus the last one: what stopping at the best
                        evaluation would have kept (for a score where higher is better)
    val/acc>=0.9        the first logged step at which the value reached 0.9 (also <=, for a
                        loss): steps to a threshold. A run that never reached it is censored at
                        its budget (trainer.max_steps): it counts as no faster than the budget,
                        which can only shrink a difference, never invent one
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

_PATTERN = re.compile(
    r"^(?P<key>[\w/.\-]+?)(?:@(?P<lo>\d+):(?P<hi>\d+)(?P<noise>:noise)?|@(?P<step>\d+)|\[-(?P<last>\d+):\]|:(?P<agg>min|max|rise|drop)"
    r"|(?P<cmp>>=|<=)(?P<threshold>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?$"
)
FORMS = "'test/acc', 'train/loss@100', 'train/loss@0:100', 'train/loss@0:200:noise', 'train/loss[-5:]', 'val/loss:min', 'val/loss:rise', 'val/acc:drop', 'val/acc>=0.9'"


@dataclass(frozen=True)
class MetricExpr:
    key: str
    step: int | None = None
    last: int | None = None
    agg: str | None = None
    window: tuple[int, int] | None = None  # steps lo..hi, both included
    threshold: tuple[str, float] | None = None  # (">=" or "<=", value): the step at which it was reached
    noise: bool = False  # with a window: the step-to-step noise in it, not the mean

    @property
    def at_init(self) -> bool:
        """The value logged at step 0: the untrained model (a probe's first reading, the first batch's loss).

        Every step-0 hook fires before the first optimizer step, so no training has touched it."""
        return self.step == 0

    @property
    def derived(self) -> bool:
        """A number about the curve's shape (a step count, a rise), not a value of the metric itself:
        a diverged run is not the metric's failure value there."""
        return self.threshold is not None or self.agg in ("rise", "drop") or self.noise


def parse_metric(expr: str) -> MetricExpr:
    match = _PATTERN.match(str(expr))
    if not match:
        raise ValueError(
            f"bad metric expression {expr!r}; valid forms: {FORMS}"
        )
    g = match.groupdict()
    window = (int(g["lo"]), int(g["hi"])) if g["lo"] is not None else None
    if window and window[0] > window[1]:
        raise ValueError(f"bad metric expression {expr!r}: the window's first step {window[0]} is after its last {window[1]}")
    threshold = (g["cmp"], float(g["threshold"])) if g["cmp"] else None
    return MetricExpr(g["key"], int(g["step"]) if g["step"] else None, int(g["last"]) if g["last"] else None, g["agg"], window, threshold,
                      bool(g["noise"]))


def budget_steps(record: dict[str, Any]) -> float:
    """The run's step budget (``trainer.max_steps``), else the last step it logged anything at. A record cut at an
    earlier evaluation (:func:`truncated`) had that step as its budget: a threshold not reached by then counts there."""
    if record.get("truncated_at") is not None:
        return float(record["truncated_at"])
    budget = ((record.get("config") or {}).get("trainer") or {}).get("max_steps")
    if isinstance(budget, int) and budget > 0:
        return float(budget)
    steps = [p[0] for pts in record.get("curves", {}).values() for p in pts]
    return float(max(steps)) if steps else math.nan


def _float32(value: float) -> float:
    """``value`` rounded to float32, the precision every logged metric has (a bar read at float64 would miss a value
    equal to it: float32(0.9) < 0.9)."""
    if not math.isfinite(value) or abs(value) > 3.4e38:  # beyond float32's range: no logged value can equal it
        return value
    return struct.unpack("f", struct.pack("f", value))[0]


def _number(value: Any) -> float:
    """Record values are floats, or "nan"/"inf" strings after a JSON round trip."""
    return float(value)


def metric_value(record: dict[str, Any], expr: str) -> float:
    """The value of ``expr`` in a run record; NaN when the run never logged it."""
    m = parse_metric(expr)
    points = record.get("curves", {}).get(m.key, [])
    if m.window is not None:
        inside = [_number(v) for s, v in points if m.window[0] <= s <= m.window[1]]
        if m.noise:
            steps = [b - a for a, b in zip(inside, inside[1:])]
            if len(steps) < 2:
                return math.nan
            mean = sum(steps) / len(steps)
            return math.sqrt(sum((d - mean) ** 2 for d in steps) / (len(steps) - 1) / 2)
        return sum(inside) / len(inside) if inside else math.nan
    if m.step is not None:
        before = [v for s, v in points if s <= m.step]
        return _number(before[-1]) if before else math.nan
    if m.last is not None:
        tail = [_number(v) for _, v in points[-m.last :]]
        return sum(tail) / len(tail) if tail else math.nan
    if m.threshold is not None:
        cmp, bar = m.threshold
        bar = _float32(bar)  # logged values are float32: 360/400 is stored as 0.8999999761581421, which is 0.9 there
        for step, v in points:
            v = _number(v)
            if math.isfinite(v) and (v >= bar if cmp == ">=" else v <= bar):
                return float(step)
        return budget_steps(record) if points or record.get("status") else math.nan
    if m.agg in ("rise", "drop"):
        finite = [_number(v) for _, v in points if math.isfinite(_number(v))]
        if not finite or not math.isfinite(_number(points[-1][1])):
            return math.nan
        return finite[-1] - min(finite) if m.agg == "rise" else max(finite) - finite[-1]
    if m.agg is not None:
        values = [_number(v) for _, v in points if math.isfinite(_number(v))]
        return (min if m.agg == "min" else max)(values) if values else math.nan
    final = record.get("metrics", {}).get("final", {})
    return _number(final[m.key]) if m.key in final else math.nan


def truncated(record: dict[str, Any], step: int) -> dict[str, Any]:
    """The record as it stood at ``step``: curves cut there, final values = last logged at or before it.

    Lets a verdict be judged again at an earlier evaluation point of the same runs. A run that
    diverged after ``step`` had not diverged yet: there it is a completed run with the values it
    had logged (scored at its failure value only from the step it diverged).
    """
    curves = {k: [p for p in pts if p[0] <= step] for k, pts in record.get("curves", {}).items()}
    final = {k: pts[-1][1] for k, pts in curves.items() if pts}
    out = {**record, "curves": curves, "metrics": {**record.get("metrics", {}), "final": final}, "truncated_at": step}
    when = (record.get("divergence") or {}).get("step")
    if record.get("status") == "diverged" and when is not None and int(when) > step:
        out.update(status="completed", divergence=None)
    return out


def has_curve(records: list[dict | None], expr: str) -> list[int]:
    """The evaluation steps of ``expr``'s metric in the first completed record that logged it more than once."""
    m = parse_metric(expr)
    if m.step is not None or m.window is not None:
        return []  # already pinned to one step or window
    for rec in records:
        if rec and rec.get("status") == "completed":
            steps = [int(s) for s, _ in rec.get("curves", {}).get(m.key, [])]
            if len(steps) > 1:
                return steps
    return []
