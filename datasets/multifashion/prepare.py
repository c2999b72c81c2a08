"""Prepare ``multifashion``: the same as ``python -m bench prepare multifashion`` (see its ``--help``)."""

from bench.data.preparation import script

main = script("multifashion", __name__)
