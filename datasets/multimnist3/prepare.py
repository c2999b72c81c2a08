"""Prepare ``multimnist3``: the same as ``python -m bench prepare multimnist3`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("multimnist3", __name__)
