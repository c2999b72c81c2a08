"""One run: its typed config, the trial that assembles it, the loop, evaluation, checkpoints, the
run record and its lock, and the runner that ties them together (``bench run``). Imports ``core``,
the plug-ins (data, backbones, methods) through their registries, and nothing above."""
