"""Prepare ``utkface``: the same as ``python -m bench prepare utkface`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("utkface", __name__)
