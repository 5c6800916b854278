"""How much BatchNorm's evaluation statistics move eval accuracy: running vs precise (issue 25).

Trains each setting twice per seed, once evaluated with the running statistics and once with
precise ones (``norm.precise_batches``), validating often, and prints the swing of the validation
accuracy between consecutive evaluations. Training is identical in the two (precise statistics
are estimated on a copy and put back): the curves differ by the evaluation alone.

    python scripts/bn_eval_swing.py                     # both settings, seeds 0 and 1 (~10 min on 2 cores)
    python scripts/bn_eval_swing.py --settings issue-cnn --seeds 0

Settings:
- ``issue-cnn``: issue 25's run: a 3-stage BatchNorm CNN (32/64/64) on the 5,000 embedded MNIST
  images, SGD momentum 0.9 at a constant 0.1, batch 64, 500 steps, validated every 50.
- ``warmup-high``: the B6 ``warmup`` first version's quick ``high`` arm (ResNet-8 with BatchNorm on
  the digits, SGD momentum 0.9 at a constant 0.8, batch 256, 500 steps), validated every 25 steps.
  Its overrides are written out below, as that spec resolved them, so that the measurement stays
  reproducible after the spec's pre-registered successor replaces it.

Writes ``docs/method/bn_eval_swing.json`` (or ``--out``): per setting, seed and statistics, the
validation accuracy at every evaluation, the swing, the final test accuracy, and the training
losses' equality check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRECISE = "norm.precise_batches=20"


def settings() -> dict[str, list[str]]:
    return {
        "issue-cnn": [
            "data=mnist5k", "model=cnn", "model.channels=[32,64,64]", "norm=batch", "optimizer=sgd", "optimizer.momentum=0.9",
            "optimizer.lr=0.1", "schedule=constant", "data.batch_size=64", "trainer.max_steps=500", "trainer.val_check_interval=50",
        ],
        "warmup-high": [  # warmup's first version's arm_overrides(warmup, "high", "quick"), + validation every 25 steps and running statistics
            "data=digits", "data.batch_size=256", "model=resnet", "model.depth=8", "norm=batch", "init=kaiming_normal",
            "optimizer=sgd", "optimizer.momentum=0.9", "schedule=constant", "probes.loss_spikes=true", "probes.spike_factor=5",
            "trainer.max_steps=500", "optimizer.lr=0.8", "schedule.warmup_steps=0", "trainer.val_check_interval=25",
            "norm.precise_batches=0",
        ],
    }


def swing(values: list[float]) -> dict[str, float]:
    """Over the second half of the evaluations: the mean absolute change between consecutive ones and the range."""
    late = values[len(values) // 2 :]
    steps = [abs(b - a) for a, b in zip(late, late[1:])]
    return {"mean_abs_change": statistics.fmean(steps) if steps else 0.0, "range": max(late) - min(late), "evaluations": len(late)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["issue-cnn", "warmup-high"], help="which settings (default: both)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "method" / "bn_eval_swing.json")
    args = parser.parse_args(argv)

    from labbench.config import compose
    from labbench.train import run

    known = settings()
    unknown = [s for s in args.settings if s not in known]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; valid: {', '.join(known)}")
    out: dict = {"command": "python scripts/bn_eval_swing.py " + " ".join(sys.argv[1:] if argv is None else argv), "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            base = [*known[name], "logger=csv", "trainer.enable_progress_bar=false"]
            out["settings"][name] = {"overrides": known[name], "seeds": {}}
            for seed in args.seeds:
                rows = {}
                for stats, extra in (("running", []), ("precise", [PRECISE])):
                    record = run(compose([*base, *extra, f"seed={seed}"]), Path(tmp) / name / str(seed) / stats)
                    acc = [v for _, v in record["curves"]["val/acc"]]
                    rows[stats] = {
                        "val_acc": [round(v, 4) for v in acc], "swing": swing(acc),
                        "test_acc": record["metrics"]["final"].get("test/acc"), "evaluation": record["evaluation"]["batchnorm"],
                        "train_loss": record["curves"]["train/loss"],
                    }
                    print(f"{name} seed {seed} {stats:8s} val/acc {' '.join(f'{v:.3f}' for v in acc)}  "
                          f"swing {rows[stats]['swing']['mean_abs_change']:.3f} range {rows[stats]['swing']['range']:.3f}  "
                          f"test/acc {rows[stats]['test_acc']:.4f}", flush=True)
                same = rows["running"].pop("train_loss") == rows["precise"].pop("train_loss")
                rows["training_identical"] = same
                out["settings"][name]["seeds"][str(seed)] = rows
    for name, body in out["settings"].items():
        for stats in ("running", "precise"):
            runs = [body["seeds"][s][stats] for s in body["seeds"]]
            body[stats] = {
                "mean_abs_change": statistics.fmean(r["swing"]["mean_abs_change"] for r in runs),
                "range": statistics.fmean(r["swing"]["range"] for r in runs),
                "test_acc": statistics.fmean(r["test_acc"] for r in runs),
            }
        print(f"{name}: swing (mean |change| between evaluations, second half) running {body['running']['mean_abs_change']:.3f} "
              f"vs precise {body['precise']['mean_abs_change']:.3f} (ratio {body['running']['mean_abs_change'] / max(body['precise']['mean_abs_change'], 1e-9):.1f}); "
              f"range {body['running']['range']:.3f} vs {body['precise']['range']:.3f}; test/acc {body['running']['test_acc']:.4f} vs {body['precise']['test_acc']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
