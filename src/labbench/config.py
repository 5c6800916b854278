"""The config tree's helpers: composing it outside a Hydra app, and a run's identity.

A run is identified by a hash of its resolved config, not by a timestamp. Output
locations (``paths``), loggers and cosmetic trainer flags are not part of what a run
*is*, so they are left out of the hash: the same experiment gets the same id on any
machine and in any output folder.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from labbench import CONFIG_MODULE

# Keys that do not change what a run computes: where it writes, how it reports.
# Settings that change how a run is watched, shown or placed, never its numbers. Adding a key
# to the config changes every run id (stored ablations would re-run): new such keys go here.
NON_IDENTITY_KEYS = (
    "hydra", "logger", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "data.on_device",          # where the splits live; the batches are the same
    "sweep",                   # how a sweep ranks runs
    "divergence.check_every",  # how often the host looks; the first bad step is the same
    "threads",                 # torch's CPU threads: how the machine computes it, like the CPU model (in provenance)
)


# Keys added after runs were stored, with the value that reproduces what those runs did: at that value a key
# is left out of the identity, so a stored run keeps its id (tests/test_record.py pins ids); any other value
# is part of it.
NEUTRAL_WHEN_ADDED = {
    "data.train_size": None,            # the whole training split
    "data.label_noise": 0.0,            # clean labels
    "task.l1": 0.0,                     # no L1 penalty
    "task.l1_method": "subgradient",    # the penalty (if any) added to the loss
    "task.train_pass": False,           # no pass over the training split after the test
    "task.test_shift": 0,               # no shifted test images
    "probes.never_active": False,
    "probes.weight_structure": False,
    "probes.sparsity_tol": 1.0e-3,
    "model.head_dim": None,             # d_model // n_heads
    "task.causal_eval": False,          # no evaluation under a forced causal mask
    "task.starve_from": "trained",      # the starvation probe continues the trained discriminator
    "probes.batch_stats": False,
    "data.tokenizer": "char",           # one token per character
    "data.vocab_size": None,            # (BPE only) no vocabulary size
    "data.min_length": None,            # whole training windows, no padding
    "data.embed_dim": None,             # the ring in its own plane
    "norm.precise_batches": 0,          # evaluation reads BatchNorm's running statistics
    "norm.precise_batch_size": None,
    "norm.precise_splits": "both",
    "model.padding_mode": "zeros",      # (CNN) zero padding
    "model.head": "gap",                # (CNN) global average pooling before the classifier
    "model.head_width": 0,              # (CNN) no hidden layer in the head
}


def identity_config(cfg: DictConfig, resolve: bool = True) -> dict[str, Any]:
    """The resolved config minus :data:`NON_IDENTITY_KEYS`, with paths replaced by their names.

    With ``resolve=False`` interpolations stay as written (``${activation}``), which shows
    what an override changed directly rather than everything that follows from it.
    """
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(copy):
        for dotted in NON_IDENTITY_KEYS:
            parent, _, leaf = dotted.rpartition(".")
            node = OmegaConf.select(copy, parent) if parent else copy
            if isinstance(node, DictConfig) and leaf in node:
                node.pop(leaf)
        if "paths" in copy:
            copy.paths = {key: f"<paths.{key}>" for key in copy.paths}
        for dotted, neutral in NEUTRAL_WHEN_ADDED.items():
            parent, _, leaf = dotted.rpartition(".")
            node = OmegaConf.select(copy, parent)
            if isinstance(node, DictConfig) and leaf in node and node[leaf] == neutral:
                node.pop(leaf)
    return OmegaConf.to_container(copy, resolve=resolve)


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config a run receives, minus Hydra's own node: what ``labbench show`` prints.

    Unlike :func:`identity_config` it keeps every key, at every value: a key at its neutral value
    (``data.train_size: null``, ``task.l1: 0.0``) is left out of the run id but is still part of the
    run, and a reader looking for it must find it; ``threads`` and the paths are shown as they are.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    raw.pop("hydra", None)

    def resolved(node: Any, dotted: str) -> Any:
        if isinstance(node, dict):
            return {k: resolved(v, f"{dotted}.{k}" if dotted else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [resolved(v, f"{dotted}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            try:
                value = OmegaConf.select(cfg, dotted, throw_on_resolution_failure=True)
            except Exception:  # e.g. ${hydra:runtime.output_dir} outside a Hydra run: shown as written
                return node
            return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
        return node

    return resolved(raw, "")


def run_id(cfg: DictConfig) -> str:
    """12 hex digits of the SHA-256 of the identity config (seed included)."""
    blob = json.dumps(identity_config(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _run_id_resolver(*, _root_: DictConfig) -> str:
    return run_id(_root_)


def _div(a, b):
    """Integer division for integers (a step count from samples / batch), else true division."""
    return a // b if isinstance(a, int) and isinstance(b, int) else a / b


def _mul(a, b):
    return a * b


def register_resolvers() -> None:
    """``${labbench.run_id:}`` names run directories after the run's config hash;
    ``${labbench.div:a,b}`` and ``${labbench.mul:a,b}`` derive one setting from another
    (e.g. steps = samples / batch size, lr = base x batch size)."""
    for name, fn in (("labbench.run_id", _run_id_resolver), ("labbench.div", _div), ("labbench.mul", _mul)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def compose(overrides: Sequence[str] = (), config_name: str = "train", return_hydra_config: bool = False) -> DictConfig:
    """Compose the packaged config tree outside a Hydra app (tests, the ablation engine).

    Composition costs ~0.2 s; an ablation composes the same override list several times
    (validation, planning, running), so results are cached and a fresh copy is returned.
    """
    return copy.deepcopy(_compose_cached(tuple(overrides), config_name, return_hydra_config))


@functools.lru_cache(maxsize=4096)
def _compose_cached(overrides: tuple[str, ...], config_name: str, return_hydra_config: bool) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register_resolvers()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat


register_resolvers()
