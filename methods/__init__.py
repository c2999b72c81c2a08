"""Training methods, one module each; importing this package registers them all."""

from methods import aggregators, ls, mgda, palora, pamal  # noqa: F401
