"""One training run: config -> objects -> Trainer -> ``run.json``.

``run(cfg, output_dir)`` is the whole pipeline and knows nothing of Hydra's app
machinery, so the ablation engine can call it in-process; ``main`` is the Hydra app
behind ``labbench-train`` (every standard Hydra flag works: ``--help``, ``--cfg job``,
``--info``, ``-m``).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from labbench import CONFIG_MODULE
from labbench.config import flatten, register_resolvers, run_id
from labbench.directions import SPLITS, directions_of
from labbench.record import RECORD_NAME, provenance, read_curves, summarize_curves, write_json_atomic

register_resolvers()


def build(cfg: DictConfig):
    """Instantiate the data module, the model (initialized) and the task from ``cfg``."""
    import lightning as L
    from hydra.utils import instantiate

    check_groups_used(cfg)
    datamodule = instantiate(cfg.data, **_augmentation(cfg))
    datamodule.setup("fit")
    L.seed_everything(cfg.seed, verbose=False)  # the model's init depends on the seed alone
    model = instantiate(cfg.model, **_accepted(cfg.model, datamodule.model_kwargs()))
    instantiate(cfg.init).apply(model, model.activation)
    task_kwargs = {"model": model, "optimizer": instantiate(cfg.optimizer), "schedule": instantiate(cfg.schedule)}
    task_kwargs.update(_accepted(cfg.task, datamodule.task_kwargs()))
    if cfg.get("loss") is not None:
        if "loss" not in _parameters(cfg.task):
            raise ValueError(
                f"{cfg.task._target_} defines its own objective and takes no loss group; "
                "use its preset (preset=vae, preset=diffusion) or drop the group with ~loss"
            )
        task_kwargs["loss"] = instantiate(cfg.loss)
    # the config's own keys through Hydra, the built objects and the data's values passed as they are: a
    # vocabulary handed to instantiate would become an OmegaConf list (1.2 s at 2,000 BPE tokens, and a
    # token holding "${" would be read as an interpolation)
    task = instantiate(cfg.task, _partial_=True)(**task_kwargs)
    return datamodule, model, task


GROUP_DEFAULTS = {"norm": ("kind", "none"), "activation": ("name", "relu")}  # group -> (its key, the default)


def check_groups_used(cfg: DictConfig) -> None:
    """Refuse a ``norm`` or ``activation`` choice that the composed model does not take.

    A group reaches a model only through an interpolation in its config (``norm: ${norm}``);
    without one, ``preset=vae norm=batch`` would train the very same model under another
    run id and a record claiming a BatchNorm that is not there.
    """
    written = str(OmegaConf.to_container(cfg.model, resolve=False))
    for group, (key, default) in GROUP_DEFAULTS.items():
        node = cfg.get(group)
        if node is None or node.get(key, default) == default or "${" + group + "}" in written:
            continue
        takes = [g for g in GROUP_DEFAULTS if "${" + g + "}" in written]
        raise ValueError(
            f"{group}={node.get(key)}: {cfg.model._target_} takes no {group} group, so the choice would change the "
            f"run id and nothing else; it takes: {', '.join(takes) or 'neither norm nor activation'}. "
            f"Drop the override (the default is {group}={default})"
        )


def _check_device(trainer_cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one: one sentence, not Lightning's backend error."""
    import torch

    if str(trainer_cfg.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.accelerator={trainer_cfg.get('accelerator')} needs a CUDA GPU and this machine has none "
            "(torch.cuda.is_available() is False); use trainer=cpu (the default), or trainer=ddp trainer.accelerator=cpu for CPU DDP"
        )


def _augmentation(cfg: DictConfig) -> dict[str, Any]:
    """The ``augment`` group for the data module, refused clearly by data that takes none."""
    from hydra.utils import get_object, instantiate

    from labbench.data.base import TensorDataModule

    if cfg.get("augment") is None:
        return {}
    if not issubclass(get_object(cfg.data._target_), TensorDataModule):
        raise ValueError(
            f"augment: {cfg.data._target_} takes no augmentation; augment=crop_flip or crop works with the "
            "image data sets (data=digits, mnist5k, mnist, cifar10). Drop it with ~augment"
        )
    return {"augment": instantiate(cfg.augment)}


def _parameters(node: DictConfig) -> set[str]:
    """Named constructor parameters of a config node's ``_target_``."""
    import inspect

    from hydra.utils import get_object

    return {p.name for p in inspect.signature(get_object(node._target_)).parameters.values() if p.kind != p.VAR_KEYWORD}


def _accepted(node: DictConfig, offered: dict[str, Any]) -> dict[str, Any]:
    """What the data offers (input shape, class count, ...) that ``node``'s target takes.

    A classifier takes ``num_classes``; a generative model does not: each takes what it needs.
    """
    names = _parameters(node)
    return {k: v for k, v in offered.items() if k in names}


def _loggers(cfg: DictConfig, output_dir: Path) -> list:
    from hydra.utils import instantiate

    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is not None and node.get("_target_"):
            loggers.append(instantiate(node, save_dir=str(output_dir)))
    return loggers


RELAUNCHING_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false", "fsdp", "deepspeed")


def _check_strategy(trainer_cfg: DictConfig, relaunchable: bool) -> None:
    """Refuse a strategy that starts its other processes by re-running the command, where that breaks.

    Lightning's ``ddp`` re-executes ``sys.argv`` for ranks 1..N-1: right for a single
    ``labbench-train`` run, but from ``labbench reproduce``, a Hydra multirun, a launcher
    sweep or Python (pytest) each extra rank would re-run the whole command.
    """
    strategy, devices = str(trainer_cfg.get("strategy", "auto")), trainer_cfg.get("devices", 1)
    several = not (devices in (1, "1") or (isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices)) and len(devices) == 1)
    if strategy in RELAUNCHING_STRATEGIES and several and not relaunchable:
        raise ValueError(
            f"trainer.strategy={strategy} starts its other processes by re-running the command; that works only "
            "for a single `labbench-train` run. Here (labbench reproduce, a multirun or launcher sweep, Python) "
            "use trainer.strategy=ddp_spawn, or ddp_fork on CPU"
        )


def use_plain_cuda_check() -> None:
    """On a machine without a GPU, undo Lightning's NVML-based CUDA check for this process.

    ``import lightning`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA
    is there never initializes it (which would break forked processes). Every
    ``torch.cuda.is_available()`` then loads NVML, and each optimizer step asks once (its
    CUDA-graph health check): measured 0.07 ms a call here, 0.1-0.3 ms a step. With no GPU
    there is no CUDA state a fork could break, so the cheap check is just as safe.
    """
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def _is_extra_rank() -> bool:
    """Whether this process is rank 1..N-1 re-launched by Lightning's ``ddp`` (it writes no record)."""
    return int(os.environ.get("LOCAL_RANK", "0")) != 0 or int(os.environ.get("NODE_RANK", "0")) != 0


def run(
    cfg: DictConfig, output_dir: str | Path, choices: dict[str, str] | None = None, relaunchable: bool = False, gpu: int | None = None
) -> dict[str, Any]:
    """Train and test the run ``cfg`` describes; write and return its ``run.json`` record.

    A diverged run (non-finite loss) ends normally with status ``diverged``. Any other
    error writes a ``failed`` record and is re-raised; Ctrl-C or a SIGTERM writes ``interrupted``.
    The W&B run is finished either way. With ``evaluate_test: false`` (tuning runs) the
    test split is never read. ``relaunchable``: this process was started by a command
    that Lightning's ``ddp`` may re-run for the other ranks (a single ``labbench-train``).
    ``gpu``: the GPU a launcher's run holds (:mod:`labbench.packing`); where a run trains
    is not part of what it is, so it stays out of the config and its run id.
    Under data parallelism only rank 0 writes the record.
    """
    from hydra.utils import instantiate

    from labbench.loggers import finish_wandb
    from labbench.probes import DivergenceDetector
    from labbench.probes.init_stats import InitActivationStats
    from labbench.probes.fit_outcome import FitOutcome
    from labbench.probes.layers import make_probes
    from labbench.probes.precise_bn import PreciseBatchNorm, evaluation_record
    from labbench.probes.process_group import CloseProcessGroup
    from labbench.probes.progress import StepBudgetProgressBar

    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.copy()
    if "paths" in cfg:
        cfg.paths.output_dir = str(output_dir)  # the run's folder, whoever launched it
    record: dict[str, Any] = {
        "schema": 1,
        "run_id": run_id(cfg),
        "status": "failed",
        "error": None,
        "divergence": None,
        "choices": dict(choices or {}),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
    warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device`", category=UserWarning)  # Task's, on purpose
    # Task.log_train decides which steps log (every log_every_n_steps across epoch boundaries); Lightning's warning that an
    # epoch is shorter than the interval (printed once per run, i.e. once per run of an ablation) says nothing here
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval", category=UserWarning)
    start = time.perf_counter()
    loggers: list = []
    trainer = None
    threads_before = _use_threads(cfg.get("threads"))
    try:
        _check_strategy(cfg.trainer, relaunchable)
        _check_device(cfg.trainer)
        use_plain_cuda_check()
        datamodule, model, task = build(cfg)
        record["data"] = {"splits": datamodule.split_sizes(), "input_shape": list(datamodule.input_shape)}
        record["model"] = {"parameters": sum(p.numel() for p in model.parameters())}
        if getattr(model, "fixed_norm", None):
            record["model"]["norm"] = model.fixed_norm  # what the model really normalizes with (no norm group)
        record["baselines"] = {**(datamodule.baselines() if hasattr(datamodule, "baselines") else {}), **task.baselines(datamodule)}
        record["failure_values"] = {f"{split}/{k}": v for k, v in task.failure_values().items() for split in SPLITS}
        loggers = _loggers(cfg, output_dir)
        for logger in loggers:
            logger.log_hyperparams({"run_id": record["run_id"], **flatten(record["config"])})
        divergence = DivergenceDetector(**(cfg.get("divergence") or {}))
        callbacks: list = [divergence]
        probes = cfg.get("probes") or {}
        init_stats = InitActivationStats() if probes.get("init_activation_stats") else None
        if init_stats is not None:
            callbacks.append(init_stats)
        callbacks += make_probes(probes)
        norm = instantiate(cfg.norm) if cfg.get("norm") is not None else None
        record["evaluation"] = {"batchnorm": evaluation_record(model, norm)}
        if norm is not None and norm.precise_batches and not record["evaluation"]["batchnorm"]:
            raise ValueError(f"norm.precise_batches={norm.precise_batches}: {cfg.model._target_} built no BatchNorm layer to re-estimate; drop it")
        if norm is not None and norm.precise_batches:
            callbacks.append(PreciseBatchNorm(norm.precise_batches, norm.precise_batch_size, norm.precise_splits, seed=int(cfg.seed)))
        if cfg.trainer.get("enable_progress_bar", True):
            callbacks.append(StepBudgetProgressBar())
        outcome = FitOutcome(output_dir / "fit_outcome.json", divergence, init_stats)
        callbacks += [outcome, CloseProcessGroup()]  # the group closes last, after rank 0 wrote the outcome
        placement = {"devices": [gpu]} if gpu is not None else {}
        trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=str(output_dir), **placement)
        trainer.fit(task, datamodule=datamodule)
        record.update(outcome.restore(trainer, task))  # what the training processes learned (they may be children)
        if divergence.diverged:
            record["status"] = "diverged"
            record["divergence"] = {"step": divergence.step, "reason": divergence.reason}
        else:
            if task.last_val_step != record["steps"]:
                trainer.validate(task, datamodule=datamodule, verbose=False)
            if cfg.get("evaluate_test", True):
                trainer.test(task, datamodule=datamodule, verbose=False)
            record["status"] = "completed"
        if init_stats is not None:
            record["probes"] = {"init_activation_std": init_stats.per_layer}
        if getattr(task, "sample", None) is not None:
            record["sample"] = task.sample
        if getattr(task, "figures", None):
            record["figures"] = dict(task.figures)
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C, or a SIGTERM (Lightning raises SIGTERMException, a SystemExit; so does a killed pool's worker):
        # the run was stopped, it did not fail, and a resumed ablation runs it again (store.DONE)
        record["status"] = "interrupted"
        raise
    except Exception as err:
        record["error"] = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
        raise
    finally:
        ok = record["status"] in ("completed", "diverged")
        for logger in loggers:
            logger.finalize("success" if ok else "failed")
        finish_wandb(loggers, failed=not ok)
        _complete_record(record, cfg, output_dir, trainer, loggers, time.perf_counter() - start)
        if gpu is not None:
            record["provenance"]["gpu_index"] = gpu
        if not _is_extra_rank():
            write_json_atomic(output_dir / RECORD_NAME, record)
        _use_threads(threads_before)
    return record


def _use_threads(threads: int | None) -> int:
    """Set torch's CPU threads for this run (``threads`` in the config); returns the count before.

    The count changes how a convolution's gradient is summed (threads split the batch and add
    their parts), hence a CNN's last digits: a run's count is fixed by its config, not by how
    many runs share the machine (``--jobs``, a launcher's ``n_jobs``), and recorded in its
    provenance. ``null`` keeps torch's default (one per core)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: the torch CPU threads a run uses, a whole number >= 1 (or null: one per core)")
        torch.set_num_threads(threads)
    return before


def _complete_record(record: dict, cfg: DictConfig, output_dir: Path, trainer, loggers: list, wall: float) -> None:
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    csv_dirs = [Path(lg.log_dir) for lg in loggers if isinstance(lg, CSVLogger)]
    curves = read_curves(csv_dirs[0] / "metrics.csv") if csv_dirs else {}
    directions = directions_of(curves, cfg.task._target_) if cfg.get("task") else {}
    final, best = summarize_curves(curves, directions)
    record["metrics"] = {"final": final, "best": best, "directions": directions}
    record["curves"] = curves
    record.setdefault("steps", trainer.global_step if trainer is not None else 0)
    record.setdefault("epochs", trainer.current_epoch if trainer is not None else 0)
    record["wall_time_s"] = round(wall, 3)
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wandb_dirs = [
        str(Path(lg._experiment.dir).parent) for lg in loggers if isinstance(lg, WandbLogger) and lg._experiment is not None
    ]
    record["files"] = {
        "output_dir": str(output_dir),
        "csv": str(csv_dirs[0] / "metrics.csv") if csv_dirs else None,
        "wandb": wandb_dirs[0] if wandb_dirs else None,
    }
    record["provenance"] = provenance(str(cfg.trainer.get("accelerator")), str(cfg.trainer.get("precision")), cfg.seed)


def require_plugins(argv: list[str]) -> None:
    """Stop with the install command when the command line picks a plugin that is not installed."""
    import importlib.util

    if any(a.startswith("hydra/sweeper=tpe") for a in argv) and importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        raise SystemExit('hydra/sweeper=tpe needs Optuna\'s Hydra sweeper: pip install "labbench[optuna]" '
                         "(hydra-optuna-sweeper, which requires optuna 2.x); a grid needs nothing: optimizer.lr=0.1,0.03,0.01")


def without_wandb_flag(argv: list[str]) -> list[str]:
    """``--no-wandb``, as the ablation commands take it, is ``logger=csv`` here (CSV curves, no W&B run); Hydra itself
    knows no such flag. Placed in ``sys.argv`` so that ranks Lightning re-executes see the same override."""
    if "--no-wandb" not in argv:
        return argv
    return [a for a in argv if a != "--no-wandb" and not a.startswith("logger=")] + ["logger=csv"]


def main() -> None:
    """Console entry point ``labbench-train``: the Hydra app over ``conf/train.yaml``."""
    import sys

    import hydra

    sys.argv = without_wandb_flag(sys.argv)
    require_plugins(sys.argv[1:])

    @hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="train", version_base="1.3")
    def _app(cfg: DictConfig) -> float:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from labbench.packing import one_gpu_per_run, share_cores
        from labbench.summary import print_summary
        from labbench.sweep import objective_value

        hydra_cfg = HydraConfig.get()
        choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
        share_cores(hydra_cfg.launcher)
        try:
            with one_gpu_per_run(cfg, hydra_cfg.launcher) as gpu:
                record = run(cfg, hydra_cfg.runtime.output_dir, choices=choices, relaunchable=hydra_cfg.mode == RunMode.RUN, gpu=gpu)
        except Exception:
            if hydra_cfg.mode != RunMode.MULTIRUN:
                raise
            # In a sweep one failed run must not stop the others; its record says "failed".
            logging.getLogger(__name__).exception("run failed; the sweep goes on (see its run.json)")
            record = None
        if record is not None and not _is_extra_rank():
            print_summary(record)
        return objective_value(record, cfg.sweep.objective, cfg.sweep.direction)  # what a sweeper ranks runs by

    _app()


if __name__ == "__main__":
    main()
