"""Training methods, one module each; importing this package registers them all."""

from methods import ls, palora  # noqa: F401
