"""Prepare ``sarcos``: the same as ``python -m bench prepare sarcos`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("sarcos", __name__)
