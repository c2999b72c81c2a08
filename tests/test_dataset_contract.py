"""The registry-wide dataset contract: every registered dataset's spec, its missing-data error and
its prepare entry (as tests/test_method_contract.py runs over every method)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench.core import catalog
from bench.core.errors import MissingDataError
from bench.core.registry import BACKBONES, DATASETS, load_all
from bench.data.kit.preparation import PREPARATIONS, entry
from bench.train.config import resolve

ROOT = Path(__file__).resolve().parent.parent
ALL_DATASETS = DATASETS.names()
CATALOGUE = catalog.entries("dataset")
load_all()  # every dataset module, and with it every prepare entry
PREPARED = [name for name in ALL_DATASETS if name in PREPARATIONS]
"""Datasets with a prepare entry (files to put under the data root); the others are built in memory
or from installed packages."""


def grid_size(num_tasks: int, points_per_edge: int) -> int:
    """Rays of the evaluation grid (bench.core.rays.eval_grid): a line, a triangle lattice, or vertices + uniform."""
    if num_tasks == 2:
        return points_per_edge
    if num_tasks == 3:
        return points_per_edge * (points_per_edge + 1) // 2
    return num_tasks + 1


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_spec_invariants(name: str):
    spec = DATASETS.get(name)
    assert spec.name == name and spec.description == CATALOGUE[name][1]
    names = spec.objective_names
    assert len(names) >= 2 and len(set(names)) == len(names)
    for objective in spec.objectives:
        assert objective.hv_metric in {m.name for m in objective.metrics}, objective.name
    assert len(spec.hv_reference) == len(spec.hypervolume_objectives)
    assert all(math.isfinite(r) and r > 0 for r in spec.hv_reference)
    assert spec.input_shape and all(isinstance(d, int) and d > 0 for d in spec.input_shape)
    assert spec.backbone in BACKBONES
    rays = spec.eval_rays()
    assert rays.shape == (grid_size(spec.num_tasks, spec.eval_points_per_edge), spec.num_tasks)
    assert (rays >= 0).all() and torch.allclose(rays.sum(dim=1), torch.ones(len(rays)))
    assert len(torch.unique(rays, dim=0)) == len(rays)
    resolve("ls", name)  # the paper's training defaults and the presets are valid config keys


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_an_empty_data_root_gives_the_data_or_names_the_folder_and_the_prepare_command(name: str, tmp_path: Path):
    """A dataset built from installed packages or in memory loads from an empty data root; any other
    names what is missing there and the command that prepares it."""
    try:
        split = DATASETS.get(name).load(tmp_path, "train")
    except MissingDataError as err:
        message = str(err)
    else:
        assert len(split[0] if isinstance(split, tuple) else split) > 0
        return
    assert "\n" not in message and str(tmp_path) in message
    prepared = entry(name)
    commands = [form.format(n) for n in prepared.datasets for form in ("datasets/{}/prepare.py", "bench prepare {}")]
    assert any(command in message for command in commands), message
    for option in prepared.options:
        if option.required:  # the command in the message gives every required option (one of a group)
            group = [o for o in prepared.options if option.group and o.group == option.group] or [option]
            assert any(flag in message for o in group for flag in o.flags), (option.flags, message)


@pytest.mark.parametrize("name", PREPARED)
def test_every_prepare_entry_has_a_data_card_and_plain_help(name: str):
    prepared = entry(name)
    assert PREPARATIONS.get(name) is prepared and name in prepared.datasets and prepared.summary
    assert (ROOT / "datasets" / prepared.datasets[0] / "README.md").is_file()
    help_text = prepared.parser(f"python -m bench prepare {name}").format_help()
    assert "--data-root ROOT" in help_text and "``" not in help_text
    script = ROOT / "datasets" / name / "prepare.py"
    if script.exists():  # datasets/<name>/prepare.py is only the shim over this entry
        assert f'main = script("{name}", __name__)' in script.read_text()


# validate_every_n in configs/experiment/<dataset>/<dataset>.yaml of nik-dim/palora @ f9e8210, and of
# nik-dim/pamal @ 26adf53 for Census (the only official Census code). MultiFashion and the mini
# dataset follow MultiMNIST's protocol.
OFFICIAL_VALIDATE_EVERY = {
    "multimnist": 1,
    "multimnist3": 10,
    "utkface": 20,
    "cityscapes": 20,
    "nyuv2": 10,
    "celeba": 1,
    "sarcos": 10,
    "census": 10,
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_VALIDATE_EVERY))
def test_validation_frequency_is_the_official_one(name: str):
    assert resolve("palora", name, seed=0).train.eval_every == OFFICIAL_VALIDATE_EVERY[name]


def test_utkface_pamal_trains_with_the_batch_of_the_code_that_ran_it():
    """UTKFace's PaMaL comes from nik-dim/pamal (its data config: batch 256, eval batch 512); every
    other method from nik-dim/palora (batch 128)."""
    assert resolve("pamal", "utkface", seed=0).train.batch_size == 256
    assert resolve("palora", "utkface", seed=0).train.batch_size == 128
    assert resolve("pamal", "utkface", seed=0).train.eval_batch_size == 512


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_declared_split_sizes_are_whole_splits(name: str):
    """``split_sizes`` (what a sweep plan reads where the files are absent) names only the three splits."""
    sizes = DATASETS.get(name).split_sizes
    assert set(sizes) <= {"train", "val", "test"} and all(isinstance(n, int) and n > 0 for n in sizes.values())


def test_declared_split_sizes_match_the_files(data_root: Path):
    """On the embedded dataset the declared sizes are the loaded ones (the others: their data cards)."""
    spec = DATASETS.get("multimnist-mini")
    assert {split: len(spec.load(data_root, split)[0]) for split in spec.split_sizes} == dict(spec.split_sizes)
