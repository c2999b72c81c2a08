"""Training methods, one module each; importing this package registers them all."""

from methods import aggregators, cosmos, ls, mgda, padora, palora, pamal, phn  # noqa: F401
