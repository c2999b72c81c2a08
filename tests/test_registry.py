import pytest

from bench.errors import ConfigError
from bench.registry import BACKBONES, DATASETS, METHODS, Registry


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
