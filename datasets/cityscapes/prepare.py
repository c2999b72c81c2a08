"""Prepare ``cityscapes``: the same as ``python -m bench prepare cityscapes`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("cityscapes", __name__)
