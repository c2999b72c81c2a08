"""Dataset code: one module per dataset, each registering its DatasetSpec on import."""

from bench.data import multimnist  # noqa: F401
