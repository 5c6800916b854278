"""Lightning callbacks that measure a run (and stop it when it diverges)."""

from labbench.probes.divergence import DivergenceDetector

__all__ = ["DivergenceDetector"]
