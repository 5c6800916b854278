"""MNIST and CIFAR-10 through torchvision's own classes and on-disk formats.

The files are read once and kept as tensors. When they are missing (and download is off
or fails) the error names the expected path and how to fetch the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from labbench.data.base import DatasetNotFoundError, TensorDataModule


def _fetch_hint(data: str, where: Path, files: str) -> str:
    return (
        f"{data} not found: expected {files} under {where}. "
        f"Fetch it on a machine with internet with `labbench-train data={data.lower()} data.download=true` "
        f"(torchvision downloads into that folder), or copy the files there yourself; "
        f"to use another folder set paths.data_dir=/your/dir or the LABBENCH_DATA_DIR environment variable."
    )


def missing_files(target: str, root: str | Path) -> str | None:
    """Before any run (``labbench validate``): the fetch hint when the files a data module reads from
    disk are absent under ``root``, else None. Only a look at the file names: reading them is the run's job."""
    root = Path(root)
    if target.endswith(".MNIST"):
        where = root / "MNIST" / "raw"
        names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        if all((where / n).is_file() or (where / f"{n}.gz").is_file() for n in names):
            return None
        return _fetch_hint("MNIST", where, ", ".join(names))
    if target.endswith(".CIFAR10"):
        where = root / "cifar-10-batches-py"
        names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
        if all((where / n).is_file() for n in names):
            return None
        return _fetch_hint("CIFAR10", where, "data_batch_1..5, test_batch and batches.meta")
    return None


class MNIST(TensorDataModule):
    """The 70,000 MNIST digits (60k train, 10k test) from torchvision's raw idx files."""

    num_classes = 10

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.download = download

    def _load_split(self, train: bool):
        try:
            ds = datasets.MNIST(self.root, train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            where = self.root / "MNIST" / "raw"
            files = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
            raise DatasetNotFoundError(_fetch_hint("MNIST", where, files) + f" (torchvision said: {err})") from err
        return ds.data.float().div_(255.0).unsqueeze(1), ds.targets.long()

    def load(self):
        return (*self._load_split(True), *self._load_split(False))


class CIFAR10(TensorDataModule):
    """CIFAR-10 (50k train, 10k test, 32x32 RGB) from torchvision's python pickles.

    ``verify_checksums`` keeps torchvision's MD5 check of each batch file; turn it off only
    for a deliberately modified copy (the test suite's tiny files).
    """

    num_classes = 10

    def __init__(self, root: str, download: bool = False, verify_checksums: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.download = download
        self.verify_checksums = verify_checksums

    def _load_split(self, train: bool):
        cls = datasets.CIFAR10 if self.verify_checksums else _UncheckedCIFAR10
        try:
            ds = cls(self.root, train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            where = self.root / "cifar-10-batches-py"
            files = "data_batch_1..5, test_batch and batches.meta"
            raise DatasetNotFoundError(_fetch_hint("CIFAR10", where, files) + f" (torchvision said: {err})") from err
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, torch.as_tensor(ds.targets, dtype=torch.long)

    def load(self):
        return (*self._load_split(True), *self._load_split(False))


class _UncheckedCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10 with every MD5 removed: its checks then test only that files exist."""

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}
