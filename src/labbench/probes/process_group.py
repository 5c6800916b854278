"""Close the process group inside each spawned rank before that process exits.

``ddp_spawn`` and ``ddp_fork`` start fresh processes for every stage (fit, validate,
test); each sets up a ``torch.distributed`` process group and exits when its stage ends.
Lightning destroys the group at exit only for NCCL (an ``atexit`` hook); a gloo group,
the CPU backend, is left to the interpreter's shutdown, where its C++ threads (gloo's
transport loop and work threads, the store's client) are torn down in no defined order
against the other rank, whose process may already be gone and whose store (hosted by
rank 0) may already be closed. A thread still joinable when its ``std::thread`` is
destroyed ends the process with ``terminate called without an active exception``
(SIGABRT), and the whole stage is lost: the run is recorded ``failed``.

At the end of the stage every rank waits for the others (a barrier, while every peer and
the store are certainly alive) and then destroys its group, so nothing of the group
outlives the stage and the process exits with no distributed state left. A process that
lives on after the stage (a single-process run, or Lightning's ``ddp`` which keeps its
ranks for the next stage) is left alone.
"""

from __future__ import annotations

import lightning as L
import torch.distributed as dist


def spawned_rank(trainer: L.Trainer) -> bool:
    """Whether this process is a rank that Lightning started for this stage and that exits after it."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


class CloseProcessGroup(L.Callback):
    """Barrier, then ``destroy_process_group`` at the end of every stage of a spawned or forked rank.

    Runs in ``teardown``, the last hook of a stage: nothing of Lightning's touches the group
    after it (the launcher only copies rank 0's results back to the parent).
    """

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not (dist.is_available() and dist.is_initialized() and spawned_rank(trainer)):
            return
        dist.barrier()
        dist.destroy_process_group()
