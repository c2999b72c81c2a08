"""Dataset code: one module per dataset, registering its DatasetSpec and its prepare entry on import.

:mod:`bench.registry` imports a dataset's module when the dataset is first built
(``DATASETS.get(name)``); ``load_all()`` imports every module of this package, so a new dataset is
one new file here plus its line in :mod:`bench.catalog`.
"""
