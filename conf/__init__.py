"""labbench's Hydra config tree, importable as ``labbench.conf`` (see pyproject.toml)."""
