"""Prepare ``multimnist``: the same as ``python -m bench prepare multimnist`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("multimnist", __name__)
