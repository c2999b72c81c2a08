"""Typed run configuration and its resolution.

Precedence (lowest first): dataclass defaults < the dataset's protocol defaults
(``DatasetSpec.train_defaults``) < ``bench/presets/<dataset>.toml[method]`` < ``--config FILE.toml``
< ``--set key=value``. Keys are dotted: ``train.<field>``, ``data.<field>``, ``method.<field>``.
Unknown keys and values of the wrong type raise :class:`ConfigError` naming the valid choices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from bench.core.errors import ConfigError, closest

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


RayBatching = Literal["sequential", "vmap"]
AmpDtype = Literal["off", "bf16", "fp16"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and evaluation schedule."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_batch_size: int = 1024
    eval_every: int = 1
    """Evaluate the ray grid on val every this many epochs (and always after the last)."""
    val_points_per_edge: int = 3
    """Validation during training evaluates the rays of the evaluation grid that lie on the grid with
    this many points per edge (3: the vertices and the midpoints; 0: the whole grid). The test front
    always uses the whole grid. See FIDELITY.md ("validation during training")."""
    val_samples: int = 1000
    """Validation during training reads the first this many samples of the val split (0: all of it;
    ``data.eval_limit``, when smaller, still applies)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: no limit); the ray schedule still spans all epochs."""
    lr_step: int = 0
    """Multiply every learning rate by ``lr_gamma`` each ``lr_step`` epochs (StepLR; 0: constant)."""
    lr_gamma: float = 0.5
    checkpoint_every: int = 500
    """Save a checkpoint every this many steps (0: only after each epoch's evaluation, which always
    saves one). Not part of the run id: resuming gives the same results wherever it restarts."""
    log_every: int = 50
    """Record the training losses in ``metrics.jsonl`` every this many steps: each task's loss (mean
    over the step's rays) and the method's reduced loss, averaged over the steps (0: off). Not part
    of the run id."""
    ray_batching: RayBatching = "sequential"
    """How a step's R rays run: ``sequential`` (R forwards) or ``vmap`` (one ``torch.func.vmap``
    over the rays; models whose ray only makes parameters or inputs, without BatchNorm)."""
    amp: AmpDtype = "off"
    """Mixed precision of the training forward: ``off``, ``bf16`` or ``fp16`` (``torch.autocast``;
    fp16 without a loss scaler, see the README). Evaluation stays in float32."""
    compile: bool = False
    """Compile the model with ``torch.compile`` (in place: checkpoints keep their keys)."""
    extend_shorter: bool = False
    """A run with no checkpoint continues from a COMPLETED run in its folder with the same config but
    fewer epochs, when its method's ray draws ignore the training progress, which makes it equal to
    training from the start (:mod:`bench.train.extend`). Not part of the run id."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:  # NaN too; inf is allowed (a run that diverges, and is recorded so)
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0 or not self.lr_gamma > 0:
            raise ValueError(
                f"train.weight_decay must be >= 0 and train.lr_gamma > 0, got {self.weight_decay}, {self.lr_gamma}"
            )
        for name in ("lr_step", "max_steps", "checkpoint_every", "log_every", "val_points_per_edge", "val_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.val_points_per_edge == 1:
            raise ValueError("train.val_points_per_edge must be 0 (the whole grid) or >= 2, got 1")
        for name, kind in (("ray_batching", RayBatching), ("amp", AmpDtype)):
            valid = typing.get_args(kind)
            if getattr(self, name) not in valid:  # the parser checks these; this guards direct construction
                raise ValueError(f"unknown train.{name} {getattr(self, name)!r}; valid: {', '.join(valid)}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which part of the data to use; limits are for smoke runs and tests (0: everything)."""

    train_limit: int = 0
    eval_limit: int = 0

    def __post_init__(self) -> None:
        for name in ("train_limit", "eval_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0 (0: everything), got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Backbone options."""

    backbone: str = ""
    """A registered backbone instead of the dataset's default (empty: the dataset's)."""
    weights: str = ""
    """Initial encoder weights: empty (random), ``imagenet`` (torchvision's file, looked up in the
    torch hub cache and ``<data root>/weights``), or the path of a state-dict file."""


SECTIONS = ("train", "data", "model", "method")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result; ``run_id`` hashes it (paths and device excluded)."""

    method: str
    dataset: str
    seed: int
    train: TrainConfig
    data: DataConfig
    hparams: Any
    model: ModelConfig = ModelConfig()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "dataset": self.dataset,
            "seed": self.seed,
            "train": dataclasses.asdict(self.train),
            "data": dataclasses.asdict(self.data),
            "model": dataclasses.asdict(self.model),
            "method_hparams": to_jsonable(dataclasses.asdict(self.hparams)),
        }

    def identity(self) -> dict[str, Any]:
        """What names the run: :func:`identity_of` its config."""
        return identity_of(self.to_dict())

    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method}_{self.dataset}_s{self.seed}_{digest}"


NOT_IDENTITY = ("train.checkpoint_every", "train.log_every", "train.extend_shorter")
"""Dotted keys left out of a run's identity (its run id and the report's grouping)."""

ADDED_LATER = {
    "train.ray_batching": "sequential",
    "train.amp": "off",
    "train.compile": False,
    "train.val_points_per_edge": 0,
    "train.val_samples": 0,
    "method_hparams.adapter_path": "merged",
    "method_hparams.stacking": "auto",
    "method_hparams.regulariser": "paper",
}
"""Keys that older run records lack, with the value that reproduces those runs: at that value a key
is left out of the identity, so a record without the key keeps its run id (and a sweep still finds it)."""


def identity_of(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict without the keys that cannot change a result (:data:`NOT_IDENTITY`) and without
    the :data:`ADDED_LATER` keys at the value that records without them ran at."""
    at_default = tuple(
        key
        for key, value in ADDED_LATER.items()
        if config.get(key.partition(".")[0], {}).get(key.partition(".")[2], value) == value
    )
    return without_keys(config, NOT_IDENTITY + at_default)


def without_keys(config: dict[str, Any], dotted: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a nested config dict without the ``section.key`` entries named in ``dotted``."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key in dotted:
        section, _, name = key.partition(".")
        if isinstance(out.get(section), dict):
            out[section].pop(name, None)
    return out


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def field_types(cls: type) -> dict[str, Any]:
    """Each field of the dataclass ``cls`` with its resolved type annotation, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_value(key: str, raw: Any, kind: Any) -> Any:
    """Convert ``raw`` (a string from ``--set`` or a TOML value) to the field type ``kind``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "")):
            return None
        return parse_value(key, raw, options[0])
    if origin is tuple:
        return _parse_tuple(key, raw, kind)
    if origin is typing.Literal:
        return _parse_choice(key, raw, typing.get_args(kind))
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return raw.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{key}: expected a boolean (true/false), got {raw!r}")
    if kind in (int, float):
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
            raise ConfigError(f"{key}: expected {kind.__name__}, got {raw!r}")
        try:
            value = kind(raw)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key}: expected {kind.__name__}, got {raw!r}") from None
        if key.startswith("method.") and not math.isfinite(value):  # (train.lr=inf is a divergence test)
            raise ConfigError(f"{key}: expected a finite number, got {raw!r}")
        return value
    if kind is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a string, got {raw!r}")
        return raw
    raise ConfigError(f"{key}: unsupported field type {kind}")  # pragma: no cover - a programming error


def _parse_choice(key: str, raw: Any, choices: tuple[Any, ...]) -> Any:
    """The value of a ``Literal[...]`` field: the choice ``raw`` names (parsed as that choice's type)."""
    for choice in choices:
        try:
            if parse_value(key, raw, type(choice)) == choice:
                return choice
        except ConfigError:
            continue
    raise ConfigError(f"unknown {key} {raw!r}; valid: {', '.join(str(c) for c in choices)}")


def _parse_tuple(key: str, raw: Any, kind: Any) -> tuple:
    """Tuples of floats ('0.3,0.7') and tuples of rays ('0.3,0.7;0.5,0.5' or TOML [[0.3, 0.7]])."""
    args = typing.get_args(kind)
    inner = args[0]
    if isinstance(raw, str):
        if typing.get_origin(inner) is tuple:
            parts = [p for p in raw.split(";") if p.strip()]
        else:
            parts = [p for p in raw.split(",") if p.strip()]
    elif isinstance(raw, (list, tuple)):
        parts = list(raw)
    else:
        raise ConfigError(f"{key}: expected a list, got {raw!r}")
    if typing.get_origin(inner) is tuple:
        return tuple(_parse_tuple(key, p, inner) for p in parts)
    return tuple(parse_value(key, p, inner) for p in parts)


def _valid_keys(section: str, cls: type) -> str:
    return ", ".join(f"{section}.{name}" for name in field_types(cls))


def apply_overrides(obj: Any, section: str, overrides: Mapping[str, Any]) -> Any:
    """Return a copy of dataclass ``obj`` with fields replaced (values parsed to the field types)."""
    types_ = field_types(type(obj))
    changes = {}
    for name, raw in overrides.items():
        if name not in types_:
            valid = _valid_keys(section, type(obj)) or f"none ({section} has no settings)"
            near = closest(name, list(types_))  # on the field alone: a shared "section." would dominate
            hint = f" (did you mean '{section}.{near}'?)" if near else ""
            raise ConfigError(f"unknown key '{section}.{name}'{hint}; valid keys: {valid}")
        changes[name] = parse_value(f"{section}.{name}", raw, types_[name])
    try:
        return dataclasses.replace(obj, **changes)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid {section} settings: {err}") from None


def split_dotted(pairs: Iterable[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """{'train.epochs': 3} -> {'train': {'epochs': 3}}; keys must name a known section."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in pairs:
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            near = closest(section, list(SECTIONS)) if name else None
            hint = f" (did you mean '{near}.{name}'?)" if near else ""
            raise ConfigError(
                f"unknown key {key!r}{hint}; keys look like {', '.join(s + '.<field>' for s in SECTIONS)}"
            )
        out[section][name] = value
    return out


def parse_set(assignments: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. train.epochs=3), got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def flatten_table(table: Mapping[str, Any], source: str) -> list[tuple[str, Any]]:
    """A TOML table with [train]/[data]/[method] sub-tables (or dotted keys) -> dotted pairs."""
    pairs: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            if key not in SECTIONS:
                raise ConfigError(f"{source}: unknown table [{key}]; valid tables: {', '.join(SECTIONS)}")
            pairs.extend((f"{key}.{k}", v) for k, v in value.items())
        else:
            pairs.append((key, value))
    return pairs


def read_toml(path: Path) -> dict[str, Any]:
    if Path(path).exists() and not Path(path).is_file():
        raise ConfigError(f"config file {path} is not a file; give a TOML file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def preset_table(dataset: str, method: str) -> tuple[dict[str, Any], str]:
    """The ``[method]`` table of ``bench/presets/<dataset>.toml`` (following ``extends = "<dataset>"``)."""
    path = PRESETS_DIR / f"{dataset}.toml"
    if not path.is_file():
        return {}, str(path)
    presets = read_toml(path)
    parent = presets.pop("extends", None)
    if method in presets:
        return presets[method], f"{path.name}[{method}]"
    if isinstance(parent, str):
        return preset_table(parent, method)
    return {}, str(path)


def config_layers(
    method: str,
    dataset: str,
    config_file: Path | None = None,
    assignments: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The layers above the dataclass defaults, lowest first, each named: the dataset's protocol, its
    preset, ``--config``, a sweep's ``[set]`` and ``--set`` (see the module docstring)."""
    from bench.core.registry import DATASETS

    table, source = preset_table(dataset, method)
    layers = [
        (f"dataset protocol ({dataset})", list(DATASETS.get(dataset).train_defaults.items())),
        (f"preset (bench/presets/{source})", flatten_table(table, source)),
    ]
    if config_file is not None:
        layers.append((f"--config {config_file}", flatten_table(read_toml(Path(config_file)), str(config_file))))
    if overrides:
        layers.append(("sweep [set]", list(overrides.items())))
    layers.append(("--set", parse_set(assignments)))
    return [(name, pairs) for name, pairs in layers if pairs]


def config_sources(layers: list[tuple[str, list[tuple[str, Any]]]]) -> dict[str, str]:
    """Dotted key -> the name of the last layer that set it (keys absent: the dataclass default)."""
    return {key: name for name, pairs in layers for key, _ in pairs}


def resolve(
    method: str,
    dataset: str,
    seed: int = 0,
    config_file: Path | None = None,
    assignments: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Resolve a run's configuration through every layer, validating names, keys and types.
    ``overrides``: typed dotted pairs (a sweep's ``[set]``), applied after the config file and
    before the ``--set`` strings."""
    from bench.core.registry import METHODS

    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    method_cls = METHODS.get(method)
    pairs = [pair for _, layer in config_layers(method, dataset, config_file, assignments, overrides) for pair in layer]
    layered = split_dotted(pairs)
    return RunConfig(
        method=method,
        dataset=dataset,
        seed=seed,
        train=apply_overrides(TrainConfig(), "train", layered["train"]),
        data=apply_overrides(DataConfig(), "data", layered["data"]),
        model=apply_overrides(ModelConfig(), "model", layered["model"]),
        hparams=apply_overrides(method_cls.Hparams(), "method", layered["method"]),
    )
