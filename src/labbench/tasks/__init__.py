"""LightningModules: a task wraps a plain model with its loss, metrics and optimizer."""

from labbench.tasks.classify import ClassificationTask

__all__ = ["ClassificationTask"]
