"""Prepare ``multifashion``: the same as ``python -m bench prepare multifashion`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("multifashion", __name__)
