"""Every option of every config group composes and instantiates; bad options fail clearly."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from labbench.config import compose
from labbench.train import build

CONF = Path(str(resources.files("labbench.conf")))
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
REQUIRED_GROUPS = {"data", "model", "optimizer", "init", "norm", "activation", "schedule", "loss", "trainer", "logger", "paths", "hydra"}


GENERATIVE_PRESET = {"vae": "vae", "gan": "gan", "diffusion": "diffusion"}  # model / task option -> its preset


def _check_generative(cfg):
    """Build data, model and task as a run does; the model's samples are shaped like the data."""
    datamodule, model, task = build(cfg)
    x = next(iter(datamodule.train_dataloader()))[0]
    assert model.sample(3).shape == (3, *x.shape[1:])
    return model, task


def _tiny_model(cfg):
    """Build the composed model for a tiny input and check its output shape."""
    if cfg.model._target_.endswith("Transformer"):
        model = instantiate(cfg.model, vocab_size=20, context_length=16)
        assert model(torch.randint(0, 20, (4, 16))).shape == (4, 16, 20)
    else:
        model = instantiate(cfg.model, in_shape=(1, 8, 8), num_classes=10)
        assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    return model


def test_config_tree_has_every_required_group():
    assert REQUIRED_GROUPS <= set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group, option, tmp_path):
    overrides = [f"{group}={option}", f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path}"]
    if group == "norm":  # instance norm needs feature maps, rms norm feature vectors
        overrides.append("model=mlp" if option == "rms" else "model=cnn")
    if group in ("model", "task") and option in GENERATIVE_PRESET:  # they come with their data, task and loss
        overrides.append(f"preset={GENERATIVE_PRESET[option]}")
    cfg = compose(overrides)
    if group == "data":
        datamodule = instantiate(cfg.data)
        if option in ("mnist", "cifar10"):
            assert Path(datamodule.root) == tmp_path  # loading needs files: see test_data.py
        else:
            datamodule.setup()
            x, y = next(iter(datamodule.train_dataloader()))
            assert x.shape == (cfg.data.batch_size, *datamodule.input_shape)
            classes = datamodule.num_classes if hasattr(datamodule, "num_classes") else datamodule.vocab_size
            assert y.max() < classes
    elif group in ("model", "task") and option in GENERATIVE_PRESET:
        model, task = _check_generative(cfg)
        assert task.model is model
    elif group in ("model", "activation", "norm"):
        model = _tiny_model(cfg)
        if group == "activation":
            assert model.activation.name == option
    elif group == "init":
        model = _tiny_model(cfg)
        instantiate(cfg.init).apply(model, model.activation)
        assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    elif group in ("optimizer", "schedule"):
        param = torch.nn.Parameter(torch.ones(3))
        optimizer = instantiate(cfg.optimizer)([param])
        scheduler = instantiate(cfg.schedule)(optimizer, total_steps=20)
        for _ in range(3):
            param.sum().backward()
            optimizer.step()
            scheduler.step()
        assert not torch.equal(param.detach(), torch.ones(3))
    elif group == "loss":
        loss_fn = instantiate(cfg.loss)
        if hasattr(loss_fn, "discriminator"):  # a GAN loss: one value for each network
            real, fake = torch.randn(8), torch.randn(8)
            values = [loss_fn.discriminator(real, fake), loss_fn.generator(fake)]
        else:
            values = [loss_fn(torch.randn(8, 10), torch.randint(0, 10, (8,)))]
        assert all(v.ndim == 0 and torch.isfinite(v) for v in values)
    elif group == "trainer":
        if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
            assert cfg.trainer.max_steps > 0  # composes; instantiating needs a GPU (tests/test_gpu.py)
        else:
            trainer = instantiate(cfg.trainer, logger=False)
            assert trainer.max_steps == cfg.trainer.max_steps
    elif group == "logger":
        loggers = [instantiate(node, save_dir=str(tmp_path)) for node in cfg.logger.values()]
        assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)
    elif group == "task":
        if option in ("language_model", "sequence"):  # the token tasks come with their data and model
            cfg = compose([f"preset={'char_lm' if option == 'language_model' else 'sequence'}", f"paths.output_dir={tmp_path}"])
        model = _tiny_model(cfg)
        data_kwargs = {
            "language_model": {"vocab": [chr(65 + i) for i in range(20)]},
            "sequence": {"symbols": 18},
        }.get(option, {"num_classes": 10})
        task = instantiate(cfg.task, model=model, optimizer=instantiate(cfg.optimizer), loss=instantiate(cfg.loss), **data_kwargs)
        assert task.configure_optimizers is not None and task.model is model
    elif group == "preset" and cfg.model._target_.rsplit(".", 1)[-1] in ("VAE", "GAN", "DDPM"):
        _check_generative(cfg)
    elif group == "preset":
        datamodule = instantiate(cfg.data)
        datamodule.setup()
        model = instantiate(cfg.model, **datamodule.model_kwargs())
        batch = next(iter(datamodule.train_dataloader()))[0]
        assert model(batch).shape[:2] == batch.shape
    else:  # paths, hydra: Hydra's own groups; composing is the test
        assert cfg is not None


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_key_has_a_comment(group, option):
    """A user reads what each key means in the file itself."""
    text = (CONF / group / f"{option}.yaml").read_text()
    assert text.lstrip().startswith("#"), "every option file starts with a comment saying what it is"
    exempt = re.compile(r"^\s*(_target_|_partial_|defaults|- )")
    bare = [
        line
        for line in text.splitlines()
        if re.match(r"^\s*[\w.]+:\s*\S", line) and "#" not in line and not exempt.match(line)
    ]
    assert not bare, f"keys without a comment in {group}/{option}.yaml: {bare}"


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as err:
        compose(["optimizer=adamm"])
    message = str(err.value)
    assert "adamm" in message
    for valid in ("adam", "adamw", "sgd", "rmsprop", "adagrad"):
        assert valid in message


def test_unknown_key_is_rejected():
    with pytest.raises(Exception, match="lrr"):
        compose(["optimizer.lrr=0.1"])


def test_norm_and_activation_groups_reach_the_model():
    """One group choice changes every layer: the single-factor overrides ablations need."""
    cfg = compose(["model=cnn", "norm=group", "norm.groups=4", "activation=tanh"])
    model = _tiny_model(cfg)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and "Tanh" in kinds and "ReLU" not in kinds
