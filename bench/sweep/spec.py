"""Sweep specs (TOML): the grid of runs and the cluster profile that runs them.

```toml
[grid]                       # required: every combination is one run
methods = ["ls", "palora"]
datasets = ["multimnist-mini"]
seeds = [0, 1]
variants = [{}, {"method.rank" = 4}]   # optional: extra settings, one grid axis

[set]                        # optional: settings for every run, as --set would give them
"train.epochs" = 1

[per_method.palora]          # optional: settings for one method's runs (over [set], under variants)
"train.lr" = 0.003
variants = [{"method.window" = 3}, {"method.window" = 4}]   # optional: this method's own variants

[cluster]                    # optional: defaults below; `profile` reads another TOML file's [cluster]
profile = "profiles/template.toml"     # relative to this spec
partition = "gpu"
time_min = 240
runs_per_gpu = 2             # runs at once on one GPU, each in its own process (default 1)
```

The cluster settings are layered: :class:`ClusterProfile`'s defaults < the profile file (``--profile
FILE`` on the command line, else the spec's ``[cluster] profile``) < the spec's own ``[cluster]``
keys. So ``--profile`` moves a spec to another cluster, and a key the spec sets itself is what its
runs need wherever they go. Unknown tables and keys are errors that list the valid ones; every run's
settings are resolved (and so validated) before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.env import check_device_name
from bench.core.errors import ConfigError
from bench.train.config import RunConfig, apply_overrides, read_toml, resolve

TABLES = ("grid", "set", "per_method", "cluster", "run")
GRID_KEYS = ("methods", "datasets", "seeds", "variants")
REQUEST_LABELS = {
    "partition": "partition",
    "account": "account",
    "qos": "QOS",
    "constraint": "constraint",
    "gpus_per_node": "GPUs per node",
    "cpus_per_task": "CPUs per task",
    "mem_gb": "memory (GB)",
    "time_min": "time limit (min)",
}
"""Profile key -> how the dry run names it."""


@dataclasses.dataclass(frozen=True)
class ClusterProfile:
    """Resources of one job (one run, or ``runs_per_gpu`` runs) and how many jobs run at once. Empty
    strings are left unset."""

    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    time_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: float = 32.0
    array_parallelism: int = 64
    signal_delay_s: int = 120
    """Seconds before the time limit at which SLURM signals the job to checkpoint and requeue."""
    max_requeues: int = 3
    """Time-out requeues allowed per job (submitit's ``max_num_timeout``); preemptions are unlimited."""
    runs_per_gpu: int = 1
    """Runs at once on one GPU, each in its own process. SLURM: one job per N runs, its CPUs and memory
    shared by them; ``--cluster local``: N workers per visible GPU (N on CPU)."""

    def request(self) -> dict[str, str]:
        """What one job asks SLURM for, by profile key: the key to set to change it."""
        asked = {"partition": self.partition or "(the cluster's default)"}
        asked |= {key: getattr(self, key) for key in ("account", "qos", "constraint") if getattr(self, key)}
        asked |= {"gpus_per_node": str(self.gpus_per_node), "cpus_per_task": str(self.cpus_per_task)}
        return asked | {"mem_gb": f"{self.mem_gb:g}", "time_min": str(self.time_min)}

    def jobs(self, runs: int) -> int:
        """SLURM jobs (array tasks) for ``runs`` runs: one per ``runs_per_gpu`` of them."""
        return math.ceil(runs / self.runs_per_gpu)

    def parallelism(self, runs: int) -> int:
        """Array tasks at once, as submitit asks for them (``%N``, at most the array's size)."""
        return min(self.array_parallelism, self.jobs(runs))

    def request_line(self, runs: int) -> str:
        """The request for ``runs`` runs as ``key=value`` settings, for an error line."""
        asked = " ".join(f"{key}={value}" for key, value in self.request().items())
        return f"{asked} array={self.jobs(runs)} array_parallelism={self.parallelism(runs)}"

    def __post_init__(self) -> None:
        at_least = {"time_min": 1, "cpus_per_task": 1, "array_parallelism": 1, "runs_per_gpu": 1}
        at_least |= {"gpus_per_node": 0, "signal_delay_s": 0, "max_requeues": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"cluster.{name} must be >= {low}, got {getattr(self, name)}")
        if not self.mem_gb > 0:
            raise ValueError(f"cluster.mem_gb must be > 0, got {self.mem_gb}")
        if self.signal_delay_s >= 60 * self.time_min:
            raise ValueError(
                f"cluster.signal_delay_s ({self.signal_delay_s}) must be shorter than the time limit "
                f"(cluster.time_min = {self.time_min} min): the job would be signalled as it starts"
            )


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Where runs read data and which device they use (``[run]``)."""

    data_root: str = ""
    device: str = "auto"
    workers: int = -1
    """DataLoader processes per run (-1: one per CPU given to the job, at most 8)."""
    log: str = ""
    """An extra log sink of every run: ``tensorboard`` (empty: none)."""

    def __post_init__(self) -> None:
        check_device_name(self.device)  # before anything is submitted
        if self.log not in ("", "tensorboard"):
            raise ConfigError(f"run.log must be 'tensorboard' or empty, got {self.log!r}")
        if self.workers < -1:
            raise ConfigError(f"run.workers must be >= 0, or -1 for one per CPU of the job; got {self.workers}")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    name: str
    path: Path
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[Mapping[str, Any], ...]
    settings: Mapping[str, Any]
    cluster: ClusterProfile
    run: RunOptions
    profile: Path | None = None
    """The profile file under the spec's own ``[cluster]`` keys (None: none)."""
    own_cluster: tuple[str, ...] = ()
    """The keys the spec's ``[cluster]`` table sets itself (they override the profile's)."""
    per_method: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """``[per_method.<name>]``: settings for that method's runs only."""
    method_variants: Mapping[str, tuple[Mapping[str, Any], ...]] = dataclasses.field(default_factory=dict)
    """``[per_method.<name>] variants``: that method's variants, in place of the grid's."""

    def request_lines(self, runs: int) -> list[str]:
        """The SLURM request for ``runs`` runs, one setting a line, as the dry run shows it."""
        c = self.cluster
        source = f"profile {self.profile}" if self.profile else "no profile file: the defaults"
        lines = [f"slurm request ({source}):"]
        lines += [f"  {REQUEST_LABELS[key]:<18} {value}" for key, value in c.request().items()]
        per_job = f"{c.runs_per_gpu} per job" if c.runs_per_gpu > 1 else "one per job"
        lines += [
            f"  {'array size':<18} {c.jobs(runs)} jobs ({runs} runs, {per_job})",
            f"  {'array parallelism':<18} {c.parallelism(runs)}",
            f"  {'on time-out':<18} signalled {c.signal_delay_s} s early, requeued up to {c.max_requeues} times",
        ]
        if self.own_cluster:
            lines.append(f"  the spec's own [cluster] keys override the profile's: {', '.join(self.own_cluster)}")
        return lines

    def configs(self) -> list[RunConfig]:
        """Every run of the grid, resolved (dataset-major, then method, variant, seed)."""
        out = []
        runs = [
            (dataset, method, variant, seed)
            for dataset, method in itertools.product(self.datasets, self.methods)
            for variant in self.method_variants.get(method, self.variants)
            for seed in self.seeds
        ]
        for dataset, method, variant, seed in runs:
            try:
                own = self.per_method.get(method, {})
                out.append(resolve(method, dataset, seed, overrides={**self.settings, **own, **variant}))
            except ConfigError as err:
                raise ConfigError(f"{self.path}: {method} on {dataset}: {err}") from None
        return out


def _check_keys(table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")


def _settings(cls: type, section: str, table: Mapping[str, Any], path: Path | str) -> Any:
    """``cls`` with the table's values, checked as run settings are (:func:`bench.train.config.apply_overrides`)."""
    try:
        return apply_overrides(cls(), section, table)
    except ConfigError as err:
        raise ConfigError(f"{path} [{section}]: {err}") from None


def _string_list(grid: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = grid.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: [grid] {key} must be a non-empty list of names, got {value!r}")
    if twice := sorted({v for v in value if value.count(v) > 1}):
        raise ConfigError(f"{where}: [grid] {key} lists {', '.join(twice)} more than once")
    return tuple(value)


def load_spec(path: Path, profile: Path | None = None) -> SweepSpec:
    """Read and validate a sweep spec. ``profile``: a cluster profile file (a TOML ``[cluster]``
    table) in place of the spec's ``[cluster] profile``; the spec's own keys still override it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} not found; examples are in slurm/*.toml")
    table = read_toml(path)
    _check_keys(table, TABLES, str(path))
    for name in ("set", "per_method", "cluster", "run"):
        if not isinstance(table.get(name, {}), Mapping):
            raise ConfigError(f"{path}: [{name}] must be a table of settings, got {name} = {table[name]!r}")
    grid = table.get("grid")
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{path}: a [grid] table with methods, datasets and seeds is required")
    _check_keys(grid, GRID_KEYS, f"{path} [grid]")
    seeds = grid.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{path}: [grid] seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: [grid] seeds lists a seed more than once: {seeds}")
    variants = grid.get("variants", [{}])
    if not isinstance(variants, list) or not variants or not all(isinstance(v, Mapping) for v in variants):
        raise ConfigError(f"{path}: [grid] variants must be a list of tables of settings, got {variants!r}")
    methods = _string_list(grid, "methods", str(path))
    if bad := [name for name, values in table.get("per_method", {}).items() if not isinstance(values, Mapping)]:
        raise ConfigError(f"{path}: [per_method.{bad[0]}] must be a table of settings")
    per_method = {
        name: {k: v for k, v in values.items() if k != "variants"}
        for name, values in table.get("per_method", {}).items()
    }
    method_variants = {}
    for name, values in table.get("per_method", {}).items():
        if "variants" in values:
            own = values["variants"]
            if not isinstance(own, list) or not own or not all(isinstance(v, Mapping) for v in own):
                raise ConfigError(f"{path}: [per_method.{name}] variants must be a list of tables of settings")
            method_variants[name] = tuple(dict(v) for v in own)
    if stray := sorted(set(per_method) - set(methods)):
        raise ConfigError(
            f"{path}: [per_method] names {', '.join(stray)}, not in [grid] methods ({', '.join(methods)})"
        )
    own = dict(table.get("cluster", {}))
    profile_path = _profile_path(path, own.pop("profile", None), profile)
    cluster = {**_profile_table(profile_path), **own} if profile_path else own
    where = path if profile_path is None else f"{path} (profile {profile_path})"
    return SweepSpec(
        name=path.stem,
        path=path,
        methods=methods,
        datasets=_string_list(grid, "datasets", str(path)),
        seeds=tuple(seeds),
        variants=tuple(dict(v) for v in variants),
        settings=dict(table.get("set", {})),
        cluster=_settings(ClusterProfile, "cluster", cluster, where),
        run=_settings(RunOptions, "run", table.get("run", {}), path),
        profile=profile_path,
        own_cluster=tuple(own),
        per_method=per_method,
        method_variants=method_variants,
    )


def _profile_path(spec: Path, named: Any, given: Path | None) -> Path | None:
    """The profile file: ``given`` (``--profile``), else the spec's ``[cluster] profile`` (relative
    to the spec), else None."""
    if given is not None:
        if not Path(given).is_file():
            raise ConfigError(f"--profile {given} not found; the shipped profiles are slurm/profiles/*.toml")
        return Path(given)
    if named is None:
        return None
    path = (spec.parent / str(named)).resolve()
    if not path.is_file():
        raise ConfigError(f"{spec}: [cluster] profile {path} not found")
    return path


def _profile_table(path: Path) -> dict[str, Any]:
    """The ``[cluster]`` table of profile file ``path`` (its only table)."""
    base = read_toml(path)
    _check_keys(base, ("cluster",), str(path))
    if not isinstance(base.get("cluster", {}), Mapping):
        raise ConfigError(f"{path}: [cluster] must be a table of settings, got cluster = {base['cluster']!r}")
    return dict(base.get("cluster", {}))
