"""The registries: exact names, menus on a miss, lazy imports, and the catalog checked against them."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench import catalog
from bench.errors import ConfigError
from bench.registry import BACKBONES, DATASETS, METHODS, Registry, load_all

ROOT = Path(__file__).resolve().parent.parent


def test_every_registry_is_filled_at_definition_site():
    assert {"ls", "palora"} <= set(METHODS.names())
    assert {"multimnist", "multimnist-mini"} <= set(DATASETS.names())
    assert "multilenet" in BACKBONES.names()


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        METHODS.get("paloraa")
    assert "ls" in str(err.value) and "palora" in str(err.value)


def test_exact_names_only():
    with pytest.raises(ConfigError):
        METHODS.get("palo")  # a prefix is not a match
    with pytest.raises(ConfigError):
        DATASETS.get("MultiMNIST")


def test_double_registration_is_refused():
    reg: Registry = Registry("thing")
    reg.add("a", 1, "first")
    with pytest.raises(ValueError):
        reg.add("a", 2, "second")
    assert reg.describe() == [("a", "first")]


@pytest.mark.parametrize(
    ("registry", "table"),
    [(METHODS, catalog.METHODS), (DATASETS, catalog.DATASETS), (BACKBONES, catalog.BACKBONES)],
    ids=["methods", "datasets", "backbones"],
)
def test_catalog_matches_the_registrations(registry: Registry, table: dict):
    """bench/catalog.py lists each name with the module that registers it and the same description."""
    load_all()
    assert registry.registered() == dict(sorted(table.items()))


def test_a_description_is_the_whole_first_paragraph_without_markup():
    reg: Registry = Registry("thing")
    reg.add("a", 1, "First line ``a``\n    goes on (:func:`f`).\n\n    Details.")
    assert reg.describe() == [("a", "First line a goes on (f).")]


def test_get_imports_only_the_module_of_its_entry():
    code = (
        "import sys\n"
        "from bench.registry import BACKBONES, DATASETS, METHODS\n"
        "assert 'palora' in METHODS and 'methods.palora' not in sys.modules\n"
        "METHODS.get('palora'); DATASETS.get('multimnist-mini'); BACKBONES.get('multilenet')\n"
        "print(sorted(m for m in ('torchjd', 'cvxpy', 'torchvision', 'methods.aggregators') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_catalog_entry_whose_module_registers_nothing_is_a_clear_error():
    reg: Registry = Registry("thing", {"ghost": ("bench.errors", "a thing")})
    assert reg.names() == ["ghost"] and reg.describe() == [("ghost", "a thing")]
    with pytest.raises(RuntimeError, match="bench/catalog.py says bench.errors registers thing 'ghost'"):
        reg.get("ghost")
