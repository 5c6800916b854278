"""The named ablations shipped with labbench, importable as ``labbench.experiments``."""
