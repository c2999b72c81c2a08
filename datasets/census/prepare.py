"""Prepare ``census``: the same as ``python -m bench prepare census`` (see its ``--help``)."""

from bench.data.preparation import script

main = script("census", __name__)
