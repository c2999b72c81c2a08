"""Dataset code: one module per dataset, registering its DatasetSpec and its prepare entry on import.

:mod:`bench.core.registry` imports a dataset's module when the dataset is first built
(``DATASETS.get(name)``); ``load_all()`` imports every module of this package. :mod:`bench.core.catalog`
reads the name and description from the module's ``register_dataset(...)`` call, so a new dataset
is one new file here.
"""
