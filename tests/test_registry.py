"""The registries: exact names, menus on a miss, lazy imports, and the catalog checked against them."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.core import catalog
from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES, DATASETS, METHODS, Registry, load_all

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
    ("registry", "kind"),
    [(METHODS, "method"), (DATASETS, "dataset"), (BACKBONES, "backbone")],
    ids=["methods", "datasets", "backbones"],
)
def test_catalog_matches_the_registrations(registry: Registry, kind: str):
    """The catalogue reads from the source each name, the module that registers it and its description."""
    load_all()
    assert registry.registered() == dict(sorted(catalog.entries(kind).items()))


PLUGIN_SOURCES = {
    "method": '''
        from bench.core.registry import METHODS

        @METHODS.register("my-method")
        class Mine:
            """My method, described
            once."""

        register_thing("helper-made", "Made by a helper.", object)

        @BACKBONES.register("not-a-method")
        def elsewhere():
            """Another registry's entry: not read as a method."""

        def helper(name):
            METHODS.register(name)(Mine)  # inside a helper: the helper's calls are the registrations
    ''',
    "dataset": """
        SPEC = register_dataset(make_spec("tiny", "A tiny set (2 tasks).", load))
        OTHER = register_dataset(DatasetSpec(name="other", description="Another set.", input_shape=(1,)))
    """,
    "backbone": '''
        @BACKBONES.register("my-net")
        def my_net(spec, extra_inputs=0):
            """My net: one layer."""
    ''',
}
READ = {
    "method": {"my-method": "My method, described once.", "helper-made": "Made by a helper."},
    "dataset": {"tiny": "A tiny set (2 tasks).", "other": "Another set."},
    "backbone": {"my-net": "My net: one layer."},
}


@pytest.mark.parametrize("kind", sorted(PLUGIN_SOURCES))
def test_one_rule_reads_every_kind_of_registration_from_its_file(kind: str, tmp_path: Path):
    path = tmp_path / "plugin.py"
    path.write_text(textwrap.dedent(PLUGIN_SOURCES[kind]))
    entries = catalog.read_registrations(path, "pkg.plugin", kind)
    assert entries == {name: ("pkg.plugin", text) for name, text in READ[kind].items()}


@pytest.mark.parametrize(
    ("kind", "source", "fix"),
    [
        (
            "method",
            'NAME = "my-method"\n\n\n@METHODS.register(NAME)\nclass Mine:\n    """Mine."""\n',
            "@METHODS.register",
        ),
        ("method", 'register_aggregator("x", DESCRIPTION, make)\n', "@METHODS.register"),
        ("dataset", "SPEC = register_dataset(make_spec(NAME, DESCRIPTION))\n", "register_dataset(DatasetSpec(name="),
        ("backbone", '@BACKBONES.register(f"net-{N}")\ndef net(spec):\n    """Net."""\n', "@BACKBONES.register"),
    ],
)
def test_a_registration_the_catalogue_cannot_read_is_one_line_naming_the_file_and_the_fix(
    kind: str, source: str, fix: str, tmp_path: Path
):
    path = tmp_path / "plugin.py"
    path.write_text(source)
    with pytest.raises(ConfigError) as err:
        catalog.read_registrations(path, "pkg.plugin", kind)
    message = str(err.value)
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "register" in text)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message
    assert f"use a string literal: {fix}" in message


def test_a_method_registered_with_a_constant_stops_the_cli_with_one_line(tmp_path: Path):
    folder = tmp_path / "my_methods"
    folder.mkdir()
    bad = folder / "my_method.py"
    bad.write_text(
        'from bench.core.registry import METHODS\n\nNAME = "mine"\n\n\n@METHODS.register(NAME)\nclass Mine:\n    pass\n'
    )
    env = {**os.environ, catalog.PLUGIN_ENV: str(folder)}
    for argv in (["list", "methods"], ["run", "--method", "mine"]):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"error: {bad}:6: ")
        assert 'use a string literal: @METHODS.register("my-method")' in proc.stderr


def test_a_registration_the_catalogue_missed_is_refused_when_its_module_registers_it():
    reg: Registry = Registry("method", dict)
    code = "reg.add('sneaky', object(), 'Registered in a way the source does not show.')"
    with pytest.raises(
        ConfigError, match=r"methods.sneaky registers method 'sneaky' where the catalogue cannot read"
    ) as err:
        exec(code, {"__name__": "methods.sneaky", "reg": reg})
    assert 'use a string literal: @METHODS.register("sneaky")' in str(err.value) and "\n" not in str(err.value)
    exec(code, {"__name__": "tests.somewhere", "reg": reg})  # outside the plug-in packages: no catalogue to match
    assert reg.names() == ["sneaky"]


def test_a_description_is_the_whole_first_paragraph_without_markup():
    reg: Registry = Registry("thing")
    reg.add("a", 1, "First line ``a``\n    goes on (:func:`f`).\n\n    Details.")
    assert reg.describe() == [("a", "First line a goes on (f).")]


def test_get_imports_only_the_module_of_its_entry():
    code = (
        "import sys\n"
        "from bench.core.registry import BACKBONES, DATASETS, METHODS\n"
        "assert 'palora' in METHODS and 'methods.palora' not in sys.modules\n"
        "METHODS.get('palora'); DATASETS.get('multimnist-mini'); BACKBONES.get('multilenet')\n"
        "print(sorted(m for m in ('torchjd', 'cvxpy', 'torchvision', 'methods.aggregators') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_catalog_entry_whose_module_registers_nothing_is_a_clear_error():
    reg: Registry = Registry("thing", {"ghost": ("bench.core.errors", "a thing")})
    assert reg.names() == ["ghost"] and reg.describe() == [("ghost", "a thing")]
    with pytest.raises(RuntimeError, match="bench/core/catalog.py says bench.core.errors registers thing 'ghost'"):
        reg.get("ghost")
