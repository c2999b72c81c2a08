"""Prepare ``census``: the same as ``python -m bench prepare census`` (see its ``--help``)."""

from bench.data.kit.preparation import script

main = script("census", __name__)
