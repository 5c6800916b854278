"""The config tree ships inside the package: a non-editable install composes too."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = REPO / "src"
    found = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    found |= {".".join(("labbench", "data", *p.relative_to(src / "labbench" / "data").parts)) for p in (src / "labbench" / "data").iterdir()
              if p.is_dir() and p.name != "__pycache__"}  # data folders (the corpus)
    conf = REPO / "conf"
    found |= {".".join(("labbench", "conf", *p.relative_to(conf).parts)) for p in conf.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    assert found | {"labbench.conf", "labbench.experiments"} == listed


def test_wheel_install_finds_the_config_tree(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("labbench-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    probe = (
        "import labbench, labbench.conf; from labbench.config import compose;"
        "cfg = compose(['model=cnn', 'optimizer=sgd', 'data=mnist1d']);"
        "print(labbench.__file__); print(labbench.conf.__file__); print(cfg.model._target_, cfg.optimizer._target_)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0].startswith(str(site)) and lines[1].startswith(str(site))  # not the repo checkout
    assert lines[2] == "labbench.models.CNN torch.optim.SGD"
    assert (site / "labbench" / "conf" / "optimizer" / "sgd.yaml").is_file()
