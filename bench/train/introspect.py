"""What a run's settings are and where each comes from: ``bench run ... --print-config`` and
``bench list METHOD`` (each ``method.*`` field with its type, default, allowed values and docstring)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from typing import Any

from bench.train.config import SECTIONS, RunConfig, config_layers, config_sources, field_types, to_jsonable

DEFAULT = "default"


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field (``x: int = 1`` then ``\"\"\"...\"\"\"``), from
    the source of ``cls`` and its dataclass bases; fields without one are absent."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def type_name(kind: Any) -> str:
    """``int``, ``float``, ``str | None``, ``tuple[float, ...]``; a ``Literal`` is shown as its values."""
    if typing.get_origin(kind) is typing.Literal:
        return "choice"
    return kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")


def fields(cls: type) -> list[dict[str, Any]]:
    """Each field of the dataclass ``cls``: name, type, default, allowed values (Literal) and docstring."""
    kinds = field_types(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        kind = kinds[f.name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} has no default: every settings field needs one")
        allowed = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()
        doc = docs.get(f.name, "")
        rows.append({"name": f.name, "type": type_name(kind), "default": default, "allowed": allowed, "doc": doc})
    return rows


def format_fields(section: str, cls: type) -> list[str]:
    """``bench list METHOD``'s lines: ``method.rank  int = 1`` then the allowed values and the docstring."""
    lines = []
    for row in fields(cls):
        head = f"  {section}.{row['name']}  {row['type']} = {to_jsonable(row['default'])!r}"
        lines.append(head)
        if row["allowed"]:
            lines.append(f"      one of: {', '.join(str(a) for a in row['allowed'])}")
        if row["doc"]:
            lines += textwrap.wrap(row["doc"], width=96, initial_indent="      ", subsequent_indent="      ")
    return lines


def resolved_settings(cfg: RunConfig, sources: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(dotted key, value, layer) for every setting of ``cfg``, in section order."""
    objects = {"train": cfg.train, "data": cfg.data, "model": cfg.model, "method": cfg.hparams}
    rows = []
    for section in SECTIONS:
        for f in dataclasses.fields(objects[section]):
            key = f"{section}.{f.name}"
            rows.append((key, to_jsonable(getattr(objects[section], f.name)), sources.get(key, DEFAULT)))
    return rows


def print_config_lines(
    cfg: RunConfig, config_file: Any = None, assignments: Any = (), overrides: Any = None
) -> list[str]:
    """``--print-config``: the run's identity, then each setting with its value and the layer it came from."""
    sources = config_sources(config_layers(cfg.method, cfg.dataset, config_file, assignments, overrides))
    rows = resolved_settings(cfg, sources)
    width = max(len(key) for key, _, _ in rows)
    value_width = max(len(repr(value)) for _, value, _ in rows)
    lines = [f"run {cfg.run_id()}: method {cfg.method}, dataset {cfg.dataset}, seed {cfg.seed}"]
    lines += [f"  {key:<{width}}  {value!r:<{value_width}}  {source}" for key, value, source in rows]
    return lines
