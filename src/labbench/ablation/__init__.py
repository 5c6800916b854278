"""Named ablations: spec -> plan -> runs -> results store -> statistics -> verdict -> report.

The engine knows configs and run records, never models: everything it varies is a Hydra
override, everything it measures is read from ``run.json``.
"""
