"""LightningModules: a task wraps a plain model with its loss, metrics and optimizer."""

from labbench.tasks.classify import ClassificationTask
from labbench.tasks.language_model import LanguageModelTask

__all__ = ["ClassificationTask", "LanguageModelTask"]
