"""Prepare ``nyuv2``: the same as ``python -m bench prepare nyuv2`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("nyuv2", __name__)
