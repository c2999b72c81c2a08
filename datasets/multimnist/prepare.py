"""Prepare ``multimnist``: the same as ``python -m bench prepare multimnist`` (see its ``--help``)."""

from bench.data.preparation import script

main = script("multimnist", __name__)
