"""Write tiny fake MNIST / CIFAR-10 files in torchvision's real on-disk formats.

Used by the data tests so torchvision's own readers run without any download.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]


def _write_idx_images(path: Path, images: np.ndarray) -> None:
    """idx3 file: magic 0x00000803 (uint8, 3 dims), big-endian int32 dims, then raw bytes."""
    assert images.dtype == np.uint8 and images.ndim == 3
    header = struct.pack(">I", 0x00000803) + struct.pack(">3I", *images.shape)
    path.write_bytes(header + images.tobytes())


def _write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """idx1 file: magic 0x00000801 (uint8, 1 dim), big-endian int32 count, then raw bytes."""
    assert labels.dtype == np.uint8 and labels.ndim == 1
    path.write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.tobytes())


def mnist_split(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel is ``3 * (i + offset) % 256`` and labels ``(i + offset) % 10``."""
    ids = np.arange(offset, offset + n)
    images = np.broadcast_to(((3 * ids) % 256).astype(np.uint8)[:, None, None], (n, 28, 28)).copy()
    labels = (ids % 10).astype(np.uint8)
    return images, labels


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``root/MNIST/raw/*-idx?-ubyte``; returns the arrays written per split."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train = mnist_split(n_train)
    test = mnist_split(n_test, offset=n_train)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        _write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return {"train": train, "test": test}


def cifar_batch(n: int, offset: int = 0) -> tuple[np.ndarray, list[int]]:
    """``n`` CHW images (flattened to 3072) with distinct values per channel, row and sample."""
    ids = np.arange(offset, offset + n)[:, None, None, None]
    c = np.arange(3)[None, :, None, None]
    h = np.arange(32)[None, None, :, None]
    w = np.arange(32)[None, None, None, :]
    images = ((7 * ids + 80 * c + 2 * h + w) % 256).astype(np.uint8)
    return images.reshape(n, 3072), [int(i) % 10 for i in ids.ravel()]


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``.

    Returns the train data (all five batches concatenated) and test data as written.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for b, name in enumerate(CIFAR_TRAIN_FILES):
        data, labels = cifar_batch(per_batch, offset=b * per_batch)
        train_x.append(data)
        train_y += labels
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    test = cifar_batch(n_test, offset=5 * per_batch)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": test[0], "labels": test[1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_LABEL_NAMES}, f)
    return {"train": (np.concatenate(train_x), train_y), "test": test}
