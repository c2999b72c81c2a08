"""Prepare ``celeba``: the same as ``python -m bench prepare celeba`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("celeba", __name__)
