"""labbench against a hand-written PyTorch loop: the same steps, model, data and batches, side by side.

    .venv/bin/python scripts/bench.py                      # every workload, result in bench-result.json
    .venv/bin/python scripts/bench.py --workloads mlp-digits --steps 300 --out docs/bench/cpu.json
    .venv/bin/python scripts/bench.py --smoke              # seconds: checks the plumbing (the test suite runs it)

For each workload, in one child process (so peak memory is the workload's own):
1. compose the labbench config, build data, model and task exactly as a run does, and keep
   a copy of the initial weights;
2. time labbench's training (Lightning Trainer with the task, CSV logging, no validation
   inside the timed steps) for ``steps`` optimizer steps;
3. reset the weights, and time a hand loop over the same batches (the data module's own
   batch iterator), the same optimizer and schedule, and the same loss;
4. reset the weights, and time the least a Lightning user writes for the same steps (a
   bare LightningModule: forward, loss, optimizer and schedule; no logging, no callbacks)
   under the same Trainer settings: what Lightning's loop itself costs;
5. check that the loss curves agree (max relative difference), so the comparison is of
   the same numerics, and report the time ratios labbench / hand and bare Lightning /
   hand, steps per second, the time from process start to the first training step, and
   peak RSS (and peak GPU memory).

The ratio is what matters: a ratio of 1.15 means labbench spends 15% more wall time than
the hand loop for the same work. Timing repeats ``--repeats`` times and keeps the best.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROCESS_START = time.perf_counter()

import lightning as L  # noqa: E402  (after PROCESS_START: start-up time includes the imports)

WORKLOADS = {
    "mlp-digits": ["data=digits", "model=mlp"],
    "cnn-mnist5k": ["data=mnist5k", "model=cnn"],
    "char-transformer": ["preset=char_lm", "task.sample_length=0"],
}


def _common(steps: int, device: str) -> list[str]:
    trainer = ["trainer=gpu"] if device == "gpu" else []
    logging_interval = ["trainer.log_every_n_steps=1"] if steps < 20 else []  # a few steps: compare them all
    return [*trainer, *logging_interval, "logger=csv", f"trainer.max_steps={steps}", "trainer.val_check_interval=1000000",
            "trainer.enable_progress_bar=false", "evaluate_test=false", "trainer.deterministic=false"]


class FirstStep(L.Callback):
    """Records when the first training batch starts, in seconds since this process started."""

    def __init__(self) -> None:
        self.at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.at is None:
            self.at = time.perf_counter() - PROCESS_START


def _sync(device: str) -> None:
    import torch

    if device == "gpu":
        torch.cuda.synchronize()


def _labbench_steps(cfg, model, task, datamodule, steps: int, device: str, out_dir: Path):
    """labbench's training loop for ``steps`` steps, logging as a run does (CSV, every
    ``trainer.log_every_n_steps``); returns (seconds, {step: loss}, first-step time)."""
    from hydra.utils import instantiate

    from labbench.record import read_curves

    first = FirstStep()
    logger = instantiate(cfg.logger.csv, save_dir=str(out_dir))
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[first], default_root_dir=str(out_dir), limit_val_batches=0)
    _sync(device)
    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    _sync(device)
    seconds = time.perf_counter() - start
    logger.finalize("success")
    losses = {int(step): v for step, v in read_curves(Path(logger.log_dir) / "metrics.csv").get("train/loss", [])}
    return seconds, losses, first.at


def _hand_steps(model, task, datamodule, steps: int, device: str):
    """The same steps by hand: batches from the data module, optimizer and schedule from the config."""
    import torch

    torch_device = torch.device("cuda" if device == "gpu" else "cpu")
    model.to(torch_device).train()
    optimizer = task.optimizer_factory(model.parameters())
    schedule = task.schedule_factory(optimizer, total_steps=steps) if task.schedule_factory is not None else None
    loss_fn = task.loss
    losses: list[float] = []
    batches = datamodule.train_dataloader()
    _sync(device)
    start = time.perf_counter()
    step = 0
    while step < steps:
        for x, y in batches:
            x, y = x.to(torch_device, non_blocking=True), y.to(torch_device, non_blocking=True)
            loss = _loss_of(loss_fn, model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            losses.append(loss.detach())
            step += 1
            if step == steps:
                break
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, [float(v) for v in losses]


def _loss_of(loss_fn, logits, y):
    return loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) if logits.dim() == 3 else loss_fn(logits, y)


class BareLightning(L.LightningModule):
    """The least a Lightning user writes for these steps: forward, loss, optimizer, schedule."""

    def __init__(self, model, task, steps: int) -> None:
        super().__init__()
        self.model, self.loss_fn, self.task, self.steps = model, task.loss, task, steps
        self.losses: list = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = _loss_of(self.loss_fn, self.model(x), y)
        self.losses.append(loss.detach())
        return loss

    def configure_optimizers(self):
        optimizer = self.task.optimizer_factory(self.model.parameters())
        if self.task.schedule_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.task.schedule_factory(optimizer, total_steps=self.steps), "interval": "step"}}


def _lightning_steps(cfg, model, task, datamodule, steps: int, device: str):
    """Bare Lightning under the run's Trainer settings, without logger or callbacks."""
    from hydra.utils import instantiate

    module = BareLightning(model, task, steps)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], limit_val_batches=0, enable_checkpointing=False)
    _sync(device)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    _sync(device)
    return time.perf_counter() - start, [float(v) for v in module.losses]


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return round(kb / 1024, 1)


def measure(name: str, steps: int, repeats: int, device: str, out_dir: str, queue) -> None:
    """Child process: one workload, labbench and hand loop ``repeats`` times each; puts a dict on ``queue``."""
    import logging
    import warnings

    import torch

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    from labbench.config import compose
    from labbench.train import build, use_plain_cuda_check

    use_plain_cuda_check()  # as a run does; the hand loop gains from it just as much
    cfg = compose([*WORKLOADS[name], *_common(steps, device)])
    datamodule, model, task = build(cfg)
    initial = copy.deepcopy(model.state_dict())
    best_lb, best_hand, best_bare, lb_losses, hand_losses, bare_losses, first_step = (
        float("inf"), float("inf"), float("inf"), {}, [], [], None)
    for r in range(repeats):
        datamodule, model, task = build(cfg)  # fresh objects, same seed: same init and data order
        model.load_state_dict(initial)
        seconds, lb_losses, first = _labbench_steps(cfg, model, task, datamodule, steps, device, Path(out_dir) / f"{name}-{r}")
        first_step = first if first_step is None else first_step
        best_lb = min(best_lb, seconds)
        datamodule, model, task = build(cfg)
        model.load_state_dict(initial)
        seconds, hand_losses = _hand_steps(model, task, datamodule, steps, device)
        best_hand = min(best_hand, seconds)
        datamodule, model, task = build(cfg)
        model.load_state_dict(initial)
        seconds, bare_losses = _lightning_steps(cfg, model, task, datamodule, steps, device)
        best_bare = min(best_bare, seconds)
    pairs = [(v, hand_losses[step]) for step, v in lb_losses.items() if step < len(hand_losses)]  # the steps labbench logged
    pairs += list(zip(bare_losses, hand_losses))
    diff = max((abs(a - b) / max(abs(b), 1e-8) for a, b in pairs), default=float("nan"))
    result = {
        "workload": name,
        "overrides": WORKLOADS[name],
        "steps": steps,
        "labbench_s": round(best_lb, 4),
        "hand_s": round(best_hand, 4),
        "lightning_s": round(best_bare, 4),
        "ratio": round(best_lb / best_hand, 3),
        "lightning_ratio": round(best_bare / best_hand, 3),
        "labbench_over_lightning": round(best_lb / best_bare, 3),
        "labbench_steps_per_s": round(steps / best_lb, 1),
        "hand_steps_per_s": round(steps / best_hand, 1),
        "overhead_ms_per_step": round((best_lb - best_hand) / steps * 1000, 3),
        "lightning_overhead_ms_per_step": round((best_bare - best_hand) / steps * 1000, 3),
        "start_to_first_step_s": round(first_step, 2) if first_step is not None else None,
        "loss_max_rel_diff": diff,
        "losses_compared": len(pairs),  # labbench's logged steps and every bare-Lightning step, against the hand loop
        "peak_rss_mb": _peak_rss_mb(),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "gpu" else None,
    }
    queue.put(result)


def augmentation(device: str, n: int = 512, repeats: int = 5) -> dict:
    """Batched crop + flip on the device against torchvision's per-image transforms (a
    DataLoader's work), on CIFAR-10-sized images; both give the same images (tests/test_augment.py)."""
    import torch
    from torchvision.transforms import v2

    from labbench.data.augment import CropFlip

    torch_device = torch.device("cuda" if device == "gpu" else "cpu")
    x = torch.rand(n, 3, 32, 32)
    aug = CropFlip(4, 0.5)
    per_image = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    xd = x.to(torch_device)
    batched, looped = float("inf"), float("inf")
    for r in range(repeats):
        params = aug.sample(n, torch.Generator().manual_seed(r))
        _sync(device)
        start = time.perf_counter()
        aug.apply(xd, {k: v.to(torch_device) for k, v in params.items()})
        _sync(device)
        batched = min(batched, time.perf_counter() - start)
        start = time.perf_counter()
        torch.stack([per_image(img) for img in x])
        looped = min(looped, time.perf_counter() - start)
    return {"images": n, "batched_images_per_s": round(n / batched), "torchvision_per_image_images_per_s": round(n / looped),
            "speedup": round(looped / batched, 1)}


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device}
    if device == "gpu":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per loop (the best is kept)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default="bench-result.json", help="where the JSON result goes")
    parser.add_argument("--smoke", action="store_true", help="a few steps, one repeat: plumbing only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.repeats = 5, 1
    out = Path(args.out)
    work = tempfile.mkdtemp(prefix="labbench-bench-")  # the timed runs' CSV logs: scratch, not results
    context = mp.get_context("spawn")
    results = []
    for name in args.workloads:
        queue = context.Queue()
        child = context.Process(target=measure, args=(name, args.steps, args.repeats, args.device, work, queue))
        child.start()
        result = queue.get()
        child.join()
        results.append(result)
        print(f"{name:18s} labbench {result['labbench_steps_per_s']:8.1f} steps/s  hand {result['hand_steps_per_s']:8.1f} steps/s  "
              f"ratio {result['ratio']:.3f}  (+{result['overhead_ms_per_step']:.2f} ms/step)  bare Lightning ratio {result['lightning_ratio']:.3f}  "
              f"first step at {result['start_to_first_step_s']} s  "
              f"peak RSS {result['peak_rss_mb']} MB  loss diff {result['loss_max_rel_diff']:.2e}", flush=True)
    augment = augmentation(args.device, n=64 if args.smoke else 512)
    print(f"augmentation (crop + flip, 32x32): batched {augment['batched_images_per_s']} images/s, torchvision per image "
          f"{augment['torchvision_per_image_images_per_s']} images/s ({augment['speedup']}x)", flush=True)
    payload = {"machine": machine(args.device), "steps": args.steps, "repeats": args.repeats, "smoke": args.smoke,
               "results": results, "augmentation": augment}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
