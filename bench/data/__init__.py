"""Dataset code: one module per dataset, each registering its DatasetSpec on import.

Every module of this package is imported, so a new dataset is one new file here.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
