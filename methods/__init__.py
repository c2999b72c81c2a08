"""Training methods, one module each, each registering its methods on import.

:mod:`bench.core.registry` imports a method's module when the method is first built
(``METHODS.get(name)``); ``load_all()`` imports them all. The folders named in ``$PFLBENCH_METHODS``
join this package (:func:`bench.core.catalog.plugin_method_folders`): a method file kept outside the
checkout is imported as ``methods.<file name>``.
"""

from bench.core.catalog import plugin_method_folders

__path__.extend(str(folder) for folder in plugin_method_folders())  # noqa: F821 - the package's own __path__
