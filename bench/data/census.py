"""UCI Census-Income (KDD): tabular multi-task classification, as PaMaL's Census benchmark.

Re-implements the preprocessing of the official code (nik-dim/pamal and nik-dim/palora,
``src/datasets/census.py``, ``data_Census_preprocessing``; MIT license), no code copied:

- files ``<root>/census/census-income.data`` and ``census-income.test`` (plain or ``.gz``): 42
  comma-separated columns, no header, values after the first preceded by a space;
- rows whose ``HHDFMX`` is "Grandchild <18 ever marr not in subfamily" are dropped (both files),
  columns MIGMTR1, MIGMTR3, MIGMTR4 and YEAR are dropped;
- each task's source column leaves the features; the other columns stay, the tasks that are off
  included (in the default age + education setting, the income label and marital status are inputs);
- features ``[standardised continuous | one-hot categorical | ASEX as 0/1]``; the scaler's mean and
  (population) std come from the whole training file, as the official StandardScaler;
- validation: a random 20% of the training file, ``numpy.random.RandomState(0).permutation``, the
  split of ``sklearn.model_selection.train_test_split(test_size=0.2, random_state=0)``;
  test: ``census-income.test``.

Differences from the official code (also in ``datasets/census/README.md``): the one-hot vocabulary of
each column is fitted on both files jointly (the official code calls ``get_dummies`` on each file
separately, which misaligns the columns whenever the two files' category sets differ); continuous
columns come in a fixed order (the official order follows a Python ``set``); string values are
compared without surrounding spaces.

The parsed table is cached once under ``<root>/census/`` (both task settings share it); the feature
matrices are built from it in about a second and kept in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from bench.core import atomic
from bench.core.errors import MissingDataError
from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.formats.idx import find_plain_or_gz
from bench.data.kit.objectives import classification
from bench.data.kit.preparation import Option, prepares

PARSER_VERSION = 1
URL = "https://archive.ics.uci.edu/dataset/117/census+income+kdd"
FILES = {"train": "census-income.data", "test": "census-income.test"}
COLUMNS = (
    "AAGE", "ACLSWKR", "ADTIND", "ADTOCC", "AHGA", "AHRSPAY", "AHSCOL", "AMARITL", "AMJIND", "AMJOCC",
    "ARACE", "AREORGN", "ASEX", "AUNMEM", "AUNTYPE", "AWKSTAT", "CAPGAIN", "CAPLOSS", "DIVVAL", "FILESTAT",
    "GRINREG", "GRINST", "HHDFMX", "HHDREL", "MARSUPWT", "MIGMTR1", "MIGMTR3", "MIGMTR4", "MIGSAME", "MIGSUN",
    "NOEMP", "PARENT", "PEFNTVTY", "PEMNTVTY", "PENATVTY", "PRCITSHP", "SEOTR", "VETQVA", "VETYN", "WKSWORK",
    "YEAR", "target",
)  # fmt: skip
"""The 42 columns in file order (the official code's names for census-income.names' attributes)."""
DROPPED_COLUMNS = ("MIGMTR1", "MIGMTR3", "MIGMTR4", "YEAR")
DROPPED_HOUSEHOLD = "Grandchild <18 ever marr not in subfamily"
"""Rows with this HHDFMX value are dropped, as the official ``drop_rows``."""
CONTINUOUS = ("AAGE", "AHRSPAY", "DIVVAL", "CAPGAIN", "CAPLOSS", "WKSWORK", "MARSUPWT")
BINARY = "ASEX"
CATEGORICAL = tuple(c for c in COLUMNS if c not in CONTINUOUS and c not in DROPPED_COLUMNS)
"""Every other kept column is one-hot encoded, the numeric codes (ADTIND, ADTOCC, NOEMP, ...) included."""
EDUCATION_PREFIXES = ("Bachelors", "Some", "Asso", "Doctorate", "Prof")
"""Positive education values: Bachelors, Some college, Associates (both), Doctorate, Prof school.
The official list also holds the misspelt prefix "Maters", which matches no value, so Masters
degrees are negatives there; we follow the code (see the data card)."""
VAL_FRACTION = 0.2
SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Task:
    """A binary task: the column it is read from (removed from the features) and its 0/1 rule."""

    column: str
    positive: Callable[[Any], bool]


def _is_senior(age: float) -> bool:
    return age >= 40


def _has_higher_education(value: str) -> bool:
    return value.startswith(EDUCATION_PREFIXES)


def _earns_over_50k(value: str) -> bool:
    return value != "- 50000."


def _never_married(value: str) -> bool:
    return value == "Never married"


TASKS: Mapping[str, Task] = {  # the official label order: income, age, education, never_married
    "income": Task("target", _earns_over_50k),
    "age": Task("AAGE", _is_senior),
    "education": Task("AHGA", _has_higher_education),
    "never_married": Task("AMARITL", _never_married),
}
TASK_SETS = {"census": ("age", "education"), "census-income-marital": ("income", "never_married")}
NUM_FEATURES = {"census": 468, "census-income-marital": 477}
"""Feature widths of the official code (``TestCensusDataModule.num_features``; 468 also follows from
its parameter count 121,092 = 468*256 + 256 + 2*(256*2 + 2))."""

Parsed = dict[str, Any]
SplitTensors = dict[str, tuple[Tensor, dict[str, Tensor]]]


def census_dir(root: Path) -> Path:
    return Path(root) / "census"


def missing_message(root: Path, missing: list[str]) -> str:
    return (
        f"the census datasets need the UCI Census-Income (KDD) files; missing in {census_dir(root)}: "
        + ", ".join(f"{name}[.gz]" for name in missing)
        + f". Get them from {URL} (the zip holds census.tar.gz with both files), then run: "
        f"python datasets/census/prepare.py --source <folder with the files or the archive> --data-root {root}"
    )


def source_files(root: Path) -> dict[str, Path]:
    """The two raw files under ``<root>/census``, or a MissingDataError naming what is missing."""
    found = {part: find_plain_or_gz(census_dir(root), name) for part, name in FILES.items()}
    missing = [FILES[part] for part, path in found.items() if path is None]
    if missing:
        raise MissingDataError(missing_message(root, missing))
    return {part: path for part, path in found.items() if path is not None}


def read_census_file(path: Path) -> pd.DataFrame:
    """One raw file as strings (surrounding spaces removed), the dropped rows and columns gone."""
    try:
        frame = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, na_filter=False, skip_blank_lines=True)
    except (OSError, ValueError, pd.errors.ParserError, EOFError) as err:
        reason = " ".join(str(err).split())
        raise MissingDataError(f"cannot read {path} as census CSV ({reason}); re-download it from {URL}") from None
    if frame.shape[1] != len(COLUMNS):
        raise MissingDataError(
            f"{path} has {frame.shape[1]} comma-separated columns, expected {len(COLUMNS)} (the UCI "
            f"Census-Income (KDD) layout); re-download it from {URL}"
        )
    frame.columns = list(COLUMNS)
    frame = frame.apply(lambda column: column.str.strip())
    frame = frame[frame["HHDFMX"] != DROPPED_HOUSEHOLD].drop(columns=list(DROPPED_COLUMNS))
    return frame.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values)
    if bad.any():
        example = frame[column][bad].iloc[0]
        raise MissingDataError(
            f"{path}: column {column} must be numeric, found {example!r} in {int(bad.sum())} row(s); "
            f"re-download the file from {URL}"
        )
    return values


def _vocabulary(values: np.ndarray) -> list[str]:
    """Sorted categories, numerically when they are all numbers (as get_dummies sorts int columns)."""
    unique = sorted(set(values.tolist()))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def parse(root: Path) -> Parsed:
    """Both files as continuous values [N, 7] (float64) and category codes [N, C] into joint vocabularies."""
    paths = source_files(root)
    frames = {part: read_census_file(path) for part, path in paths.items()}
    vocab = {c: _vocabulary(np.concatenate([f[c].to_numpy() for f in frames.values()])) for c in CATEGORICAL}
    parsed: Parsed = {"version": PARSER_VERSION, "sources": file_stamps(paths), "vocab": vocab}
    for part, frame in frames.items():
        continuous = np.stack([_numeric(frame, c, paths[part]) for c in CONTINUOUS], axis=1)
        codes = np.stack(
            [pd.Categorical(frame[c], categories=vocab[c]).codes.astype(np.int64) for c in CATEGORICAL], axis=1
        )
        parsed[part] = {"continuous": torch.from_numpy(continuous), "codes": torch.from_numpy(codes).to(torch.int16)}
    return parsed


def file_stamps(paths: Mapping[str, Path]) -> dict[str, list]:
    """Name, size and modification time of each raw file: a changed file invalidates the cache."""
    out = {}
    for part, path in paths.items():
        stat = path.stat()
        out[part] = [path.name, stat.st_size, stat.st_mtime_ns]
    return out


def cache_path(root: Path) -> Path:
    return census_dir(root) / f"census-parsed-v{PARSER_VERSION}.pt"


def parsed_table(root: Path, rebuild: bool = False) -> Parsed:
    """The parsed table from the cache file, (re)built when missing, stale or ``rebuild``."""
    paths = source_files(root)
    path = cache_path(root)
    if path.is_file() and not rebuild:
        try:
            cached = torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a truncated or garbage cache is parsed again from the sources
            print(f"warning: the data cache {path} is damaged; parsing the sources again", file=sys.stderr)
            cached = {}
        if (
            isinstance(cached, dict)
            and cached.get("version") == PARSER_VERSION
            and cached.get("sources") == file_stamps(paths)
        ):
            return cached
    parsed = parse(root)
    atomic.torch_save(path, parsed)
    return parsed


def _labels(parsed: Parsed, part: str, task: str) -> Tensor:
    rule = TASKS[task]
    if rule.column in CONTINUOUS:
        values = parsed[part]["continuous"][:, CONTINUOUS.index(rule.column)].tolist()
        return torch.tensor([int(rule.positive(v)) for v in values], dtype=torch.int64)
    table = torch.tensor([int(rule.positive(v)) for v in parsed["vocab"][rule.column]], dtype=torch.int64)
    return table[parsed[part]["codes"][:, CATEGORICAL.index(rule.column)].long()]


def features(parsed: Parsed, tasks: tuple[str, ...]) -> dict[str, Tensor]:
    """The feature matrix of each file for ``tasks`` (their source columns left out), float32."""
    sources = {TASKS[t].column for t in tasks}
    continuous = [CONTINUOUS.index(c) for c in CONTINUOUS if c not in sources]
    onehot = [CATEGORICAL.index(c) for c in CATEGORICAL if c not in sources and c != BINARY]
    sizes = torch.tensor([len(parsed["vocab"][CATEGORICAL[j]]) for j in onehot])
    offsets = torch.cumsum(sizes, 0) - sizes
    sexes = parsed["vocab"][BINARY]
    if len(sexes) > 2:
        raise MissingDataError(f"census column {BINARY} should hold 2 values, found {sexes}; re-download from {URL}")
    train = parsed["train"]["continuous"][:, continuous]
    mean, std = train.mean(0), train.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # StandardScaler leaves constant columns at 0
    out = {}
    for part in FILES:
        values, codes = parsed[part]["continuous"][:, continuous], parsed[part]["codes"]
        dummies = torch.zeros(len(codes), int(sizes.sum()))
        dummies.scatter_(1, codes[:, onehot].long() + offsets, 1.0)
        sex = codes[:, CATEGORICAL.index(BINARY)].float().unsqueeze(1)
        out[part] = torch.cat([((values - mean) / std).float(), dummies, sex], dim=1)
    return out


def validation_split(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices of the training file: sklearn's train_test_split(test_size=0.2)."""
    permutation = np.random.RandomState(seed).permutation(n)
    n_val = math.ceil(VAL_FRACTION * n)
    return permutation[n_val:], permutation[:n_val]


def build_splits(parsed: Parsed, tasks: tuple[str, ...]) -> SplitTensors:
    x = features(parsed, tasks)
    y = {part: {t: _labels(parsed, part, t) for t in tasks} for part in FILES}
    train, val = (torch.from_numpy(i) for i in validation_split(len(x["train"])))
    splits: SplitTensors = {}
    for name, rows in (("train", train), ("val", val)):
        splits[name] = (x["train"][rows], {t: v[rows] for t, v in y["train"].items()})
    splits["test"] = (x["test"], y["test"])
    return splits


@functools.lru_cache(maxsize=2)
def _splits(root: Path, tasks: tuple[str, ...], stamps: str) -> SplitTensors:
    return build_splits(parsed_table(root), tasks)


def load_census(root: Path, split: Split, tasks: tuple[str, ...], num_features: int) -> tuple[Tensor, dict]:
    """``split`` of the census data for ``tasks``; the width must be the spec's ``num_features``."""
    stamps = repr(file_stamps(source_files(root)))
    splits = _splits(Path(root), tasks, stamps)
    x, targets = splits[split]
    if x.shape[1] != num_features:
        raise MissingDataError(
            f"the census files in {census_dir(root)} give {x.shape[1]} features for tasks {', '.join(tasks)}, "
            f"expected {num_features} (the official code's width for the UCI release); the files are not the "
            f"UCI Census-Income (KDD) census-income.data/.test: re-download them from {URL}"
        )
    return x, targets


def prepare(root: Path) -> dict[str, Any]:
    """Parse the raw files into the cache (rebuilt) and report sizes and feature widths per dataset."""
    parsed = parsed_table(root, rebuild=True)
    _splits.cache_clear()
    info: dict[str, Any] = {"cache": cache_path(root), "widths": {}, "sizes": {}}
    for name, tasks in TASK_SETS.items():
        splits = build_splits(parsed, tasks)
        info["widths"][name] = splits["train"][0].shape[1]
        info["sizes"] = {split: len(x) for split, (x, _) in splits.items()}  # the same for every task set
    return info


def census_spec(name: str, description: str, tasks: tuple[str, ...], num_features: int) -> DatasetSpec:
    """A census spec for ``tasks``: 2-logit cross-entropy heads, MLP 256 (PaMaL's census.yaml), HV on errors."""
    return DatasetSpec(
        name=name,
        description=description,
        input_shape=(num_features,),
        objectives=tuple(classification(t, num_classes=2) for t in tasks),
        backbone="mlp",
        backbone_options={"hidden": (256,)},
        hv_reference=(1.0,) * len(tasks),
        load=functools.partial(load_census, tasks=tasks, num_features=num_features),
        # PaMaL configs/experiment/census/census.yaml and configs/general/data/census.yaml
        train_defaults={
            "train.epochs": 10,
            "train.batch_size": 256,
            "train.lr": 1e-3,
            "train.eval_batch_size": 8192,
            "train.eval_every": 10,
        },  # nik-dim/pamal census.yaml validate_every_n 10
    )


CENSUS = register_dataset(
    census_spec(
        "census",
        "UCI Census-Income (KDD) tabular: age >= 40 and post-secondary education (2 binary tasks)",
        TASK_SETS["census"],
        NUM_FEATURES["census"],
    )
)
CENSUS_INCOME_MARITAL = register_dataset(
    census_spec(
        "census-income-marital",
        "UCI Census-Income (KDD) tabular: income > 50k and never married (2 binary tasks)",
        TASK_SETS["census-income-marital"],
        NUM_FEATURES["census-income-marital"],
    )
)


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
WANTED = tuple(FILES.values())


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _write(stream: IO[bytes], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as out:
        shutil.copyfileobj(stream, out)
    tmp.replace(target)


def _member_name(name: str) -> str | None:
    """The file a member provides (``census-income.data`` or ``.test``, plain or .gz), or None."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base if base in WANTED or base.removesuffix(".gz") in WANTED else None


def _extract_tar(fileobj: IO[bytes] | None, path: Path | None, target: Path, found: dict[str, Path]) -> None:
    with tarfile.open(name=path, fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            base = _member_name(member.name)
            stream = tar.extractfile(member) if member.isfile() and base else None
            if stream is not None and base is not None and base.removesuffix(".gz") not in found:
                _write(stream, target / base)
                found[base.removesuffix(".gz")] = target / base


def extract(archive: Path, target: Path, found: dict[str, Path]) -> None:
    """Extract the census files from a tar(.gz) or a zip (holding the files or a tar.gz) into ``target``."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    base = _member_name(info.filename)
                    if base is not None and base.removesuffix(".gz") not in found:
                        with zf.open(info) as stream:
                            _write(stream, target / base)
                        found[base.removesuffix(".gz")] = target / base
                    elif info.filename.lower().endswith((".tar.gz", ".tgz", ".tar")):
                        with zf.open(info) as stream:
                            _extract_tar(stream, None, target, found)
        else:
            _extract_tar(None, archive, target, found)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise MissingDataError(f"cannot read archive {archive} ({err}); re-download it from {URL}") from None


def gather(source: Path, root: Path) -> Path:
    """Copy or extract ``census-income.data`` and ``.test`` from ``source`` into ``ROOT/census``."""
    if not source.exists():
        raise MissingDataError(f"--source {source} does not exist; give the folder or archive with the census files")
    target = census_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    if is_archive(source):
        extract(source, target, found)
    elif source.is_dir():
        for name in WANTED:
            path = find_plain_or_gz(source, name)
            if path is None:
                continue
            if path.resolve() != (target / path.name).resolve():
                shutil.copyfile(path, target / path.name)
            found[name] = target / path.name
        for archive in sorted(p for p in source.iterdir() if is_archive(p)):
            if len(found) < len(WANTED):
                extract(archive, target, found)
    else:
        raise MissingDataError(f"--source {source} is neither a folder nor an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    missing = [name for name in WANTED if name not in found]
    if missing:
        raise MissingDataError(
            f"missing in {source}: {', '.join(f'{m}[.gz]' for m in missing)} (as files or inside census.tar.gz "
            f"or the UCI zip); download them from {URL}"
        )
    if not (source.is_dir() and source.resolve() == target.resolve()):
        for name, path in found.items():  # the loader prefers the plain file: drop a stale copy of the other kind
            other = path.with_name(name if path.name.endswith(".gz") else f"{name}.gz")
            if other != path:
                other.unlink(missing_ok=True)
    return target


@prepares(
    "census",
    "census-income-marital",
    options=[
        Option(
            ("--source",),
            "folder with census-income.data/.test (plain or .gz) or census.tar.gz / the UCI zip, or that archive",
            required=True,
        )
    ],
)
def prepare_entry(args: argparse.Namespace, root: Path) -> list[str]:
    """Copy or extract census-income.data and census-income.test (from a folder, census.tar.gz or the
    UCI zip that wraps it) into ROOT/census, parse them once into the cache and check the feature
    widths (468 for census, 477 for census-income-marital, as the official code's)."""
    folder = gather(args.source.expanduser(), root)
    info = prepare(root)
    wrong = {name: width for name, width in info["widths"].items() if width != NUM_FEATURES[name]}
    if wrong:
        raise MissingDataError(
            "the census files give "
            + ", ".join(f"{width} features for {name} (expected {NUM_FEATURES[name]})" for name, width in wrong.items())
            + f"; they are not the UCI Census-Income (KDD) release: re-download them from {URL}"
        )
    sizes = info["sizes"]
    return [
        f"census files: {folder}",
        f"parsed cache: {info['cache']}",
        f"rows: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}",
        "features: " + ", ".join(f"{name} {width}" for name, width in info["widths"].items()),
    ]
