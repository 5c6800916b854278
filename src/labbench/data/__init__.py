"""Data modules. Every data set is held as tensors in memory and batched by index."""

from labbench.data.base import DatasetNotFoundError, IndexBatches, TensorDataModule

__all__ = ["DatasetNotFoundError", "IndexBatches", "TensorDataModule"]
