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
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.env import check_device_name
from bench.core.errors import ConfigError
from bench.train.config import RunConfig, apply_overrides, read_toml
from bench.train.grid import Grid, check_keys, read_grid

TABLES = ("grid", "set", "per_method", "cluster", "run")
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
    grid: Grid
    cluster: ClusterProfile
    run: RunOptions
    profile: Path | None = None
    """The profile file under the spec's own ``[cluster]`` keys (None: none)."""
    own_cluster: tuple[str, ...] = ()
    """The keys the spec's ``[cluster]`` table sets itself (they override the profile's)."""

    @property
    def methods(self) -> tuple[str, ...]:
        return self.grid.methods

    @property
    def datasets(self) -> tuple[str, ...]:
        return self.grid.datasets

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.grid.seeds

    @property
    def variants(self) -> tuple[Mapping[str, Any], ...]:
        return self.grid.variants

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.grid.settings

    def configs(self) -> list[RunConfig]:
        """Every run of the grid, resolved (:meth:`bench.train.grid.Grid.configs`)."""
        return self.grid.configs()

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


def _settings(cls: type, section: str, table: Mapping[str, Any], path: Path | str) -> Any:
    """``cls`` with the table's values, checked as run settings are (:func:`bench.train.config.apply_overrides`)."""
    try:
        return apply_overrides(cls(), section, table)
    except ConfigError as err:
        raise ConfigError(f"{path} [{section}]: {err}") from None


def load_spec(path: Path, profile: Path | None = None) -> SweepSpec:
    """Read and validate a sweep spec. ``profile``: a cluster profile file (a TOML ``[cluster]``
    table) in place of the spec's ``[cluster] profile``; the spec's own keys still override it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} not found; examples are in slurm/*.toml")
    table = read_toml(path)
    check_keys(table, TABLES, str(path))
    for name in ("cluster", "run"):
        if not isinstance(table.get(name, {}), Mapping):
            raise ConfigError(f"{path}: [{name}] must be a table of settings, got {name} = {table[name]!r}")
    grid = read_grid(path, table)
    own = dict(table.get("cluster", {}))
    profile_path = _profile_path(path, own.pop("profile", None), profile)
    cluster = {**_profile_table(profile_path), **own} if profile_path else own
    where = path if profile_path is None else f"{path} (profile {profile_path})"
    return SweepSpec(
        name=path.stem,
        path=path,
        grid=grid,
        cluster=_settings(ClusterProfile, "cluster", cluster, where),
        run=_settings(RunOptions, "run", table.get("run", {}), path),
        profile=profile_path,
        own_cluster=tuple(own),
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
    check_keys(base, ("cluster",), str(path))
    if not isinstance(base.get("cluster", {}), Mapping):
        raise ConfigError(f"{path}: [cluster] must be a table of settings, got cluster = {base['cluster']!r}")
    return dict(base.get("cluster", {}))
