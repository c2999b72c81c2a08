"""Training methods, one module each, each registering its methods on import.

:mod:`bench.registry` imports a method's module when the method is first built
(``METHODS.get(name)``); ``load_all()`` imports them all.
"""
