"""labbench: test what people believe about deep learning.

Hydra configs (``conf/``, shipped as ``labbench.conf``) compose a data set, a model,
an initialization, a norm, an activation, an optimizer, a schedule and a loss into a
Lightning task; :func:`labbench.train.run` trains it and writes a ``run.json`` record.
"""

__version__ = "0.1.0"

CONFIG_MODULE = "labbench.conf"
"""Python package holding the Hydra config tree (the repo's top-level ``conf/``)."""
