"""Prepare ``multifashion-mnist``: the same as ``python -m bench prepare multifashion-mnist`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("multifashion-mnist", __name__)
