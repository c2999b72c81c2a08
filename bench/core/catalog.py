"""Every registered name with the module that registers it and its description, read from the
source of the plug-in modules without importing them.

:mod:`bench.core.registry` lists, describes and checks names from this catalogue, and imports an entry's
module only when the entry is built, so ``--list``, ``--help`` and a mistyped name load neither
torchjd, cvxpy nor torchvision. One rule for the three kinds: every module of a kind's package
(:data:`PACKAGES`; the folders of ``$PFLBENCH_METHODS`` join ``methods``) is read with :mod:`ast`,
and each module-level registration in it is an entry of that kind:

- ``@METHODS.register("name")`` (``BACKBONES``, ``DATASETS``) on a class or function, described by
  its docstring;
- ``register_*("name", "description", ...)``, e.g. ``register_aggregator``;
- ``register_*(factory("name", "description", ...))`` or ``register_*(DatasetSpec(name="name",
  description="...", ...))``: a spec built in the call.

Name and description are string literals, written once, at the registration: a new plug-in is one
file and no table. A registration whose name cannot be read this way is a :class:`ConfigError` that
names the file and the fix; so is, when its module is imported, a registration the catalogue missed
(:func:`check_registration`).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
from pathlib import Path

from bench.core.cli import summary
from bench.core.errors import ConfigError

Entry = tuple[str, str]
"""(module, description): the module whose import registers the name, and the registered description."""

PACKAGES: dict[str, str] = {"method": "methods", "dataset": "bench.data", "backbone": "bench.backbones"}
"""kind -> the package whose modules register the entries of that kind."""

REGISTRIES: dict[str, str] = {"METHODS": "method", "DATASETS": "dataset", "BACKBONES": "backbone"}
"""The registry objects a registration names (``@METHODS.register``) and their kinds."""

EXAMPLES: dict[str, str] = {
    "method": '@METHODS.register("my-method")',
    "dataset": 'register_dataset(DatasetSpec(name="my-dataset", description="...", ...))',
    "backbone": '@BACKBONES.register("my-backbone")',
}
"""A readable registration of each kind, for the error messages."""

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


def package_folders(kind: str) -> list[Path]:
    """The folders of ``kind``'s package (found without importing it), then for methods the plug-in folders."""
    spec = importlib.util.find_spec(PACKAGES[kind])
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    return folders + list(plugin_method_folders()) if kind == "method" else folders


def module_files(kind: str) -> list[Path]:
    """Each module file of ``kind``'s package: ``*.py`` of its folders, the first of each name (a later
    clash is named in a warning: the module ``<package>.<name>`` can only be one of them)."""
    files: dict[str, Path] = {}
    for folder in package_folders(kind):
        for path in sorted(folder.glob("*.py")):
            if path.stem.startswith("__"):
                continue
            if path.stem in files and files[path.stem].parent != folder:
                clash = files[path.stem]
                print(f"warning: {path} is skipped: its name clashes with {clash}; rename it", file=sys.stderr)
            else:
                files.setdefault(path.stem, path)
    return list(files.values())


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _registration_kind(node: ast.expr) -> str | None:
    """For a registration call, the kind its function names (``METHODS.register``) or ``""`` for a
    ``register_*`` helper (the package's kind); None for any other expression."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "register" and isinstance(func.value, ast.Name):
        return REGISTRIES.get(func.value.id)
    if isinstance(func, ast.Name) and func.id.startswith("register_"):
        return ""
    return None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    """The call's positional argument ``index``, else its keyword argument ``keyword``."""
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _read(call: ast.Call, docstring: str | None) -> tuple[str | None, str | None]:
    """(name, description) of a registration call; None where the source does not give a literal."""
    first = _argument(call, 0, "name")
    if isinstance(first, ast.Call) and _literal(_argument(call, 1, "description")) is None:
        call, docstring = first, None  # a spec built in the call carries the name and description
        first = _argument(call, 0, "name")
    description = _argument(call, 1, "description")
    text = _literal(description) if description is not None else docstring
    return _literal(first), text


def read_registrations(path: Path, module: str, kind: str) -> dict[str, Entry]:
    """The entries of ``kind`` that the module-level registrations in ``path`` (module ``module``)
    register; one the source does not name with string literals is a one-line :class:`ConfigError`."""
    text = path.read_text(encoding="utf-8")
    if "register" not in text:
        return {}
    try:
        module_body = ast.parse(text, filename=str(path)).body
    except SyntaxError as err:
        raise ConfigError(f"{path}:{err.lineno}: {err.msg}") from err
    found: list[tuple[ast.Call, str | None]] = []
    for statement in module_body:
        if isinstance(statement, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(statement, clean=False) or ""
            found += [(d, docstring) for d in statement.decorator_list if isinstance(d, ast.Call)]
        elif isinstance(statement, ast.Expr | ast.Assign | ast.AnnAssign) and isinstance(statement.value, ast.Call):
            found.append((statement.value, None))
    entries: dict[str, Entry] = {}
    for call, doc in found:
        registers = _registration_kind(call)
        if registers is None or registers not in ("", kind):
            continue
        name, description = _read(call, doc)
        if name is None or description is None:
            what = "name" if name is None else "description"
            raise ConfigError(
                f"{path}:{call.lineno}: the catalogue cannot read this registration's {what} from the source; "
                f"use a string literal: {EXAMPLES[kind]}"
            )
        entries[name] = (module, summary(description))
    return entries


def entries(kind: str) -> dict[str, Entry]:
    """Every entry of ``kind`` (``method``, ``dataset``, ``backbone``), read from its package's modules."""
    found: dict[str, Entry] = {}
    for path in module_files(kind):
        found |= read_registrations(path, f"{PACKAGES[kind]}.{path.stem}", kind)
    return found


def check_registration(kind: str, name: str, module: str, catalogued: dict[str, Entry]) -> None:
    """Refuse, in one line, a registration of ``name`` by ``module`` (of ``kind``'s package) that the
    catalogue did not read: without this check the entry would be unknown until its module is imported."""
    if not module.startswith(f"{PACKAGES[kind]}.") or catalogued.get(name, ("", ""))[0] == module:
        return
    spec = importlib.util.find_spec(module)
    where = spec.origin if spec and spec.origin else module
    example = EXAMPLES[kind].replace(f"my-{kind}", name)
    raise ConfigError(
        f"{where} registers {kind} {name!r} where the catalogue cannot read it (a module-level registration, "
        f"name and description as string literals); use a string literal: {example}"
    )
