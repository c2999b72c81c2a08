from pathlib import Path
from typing import Literal

import pytest

from bench.core.errors import ConfigError
from bench.train.config import parse_value, resolve


def test_layers_apply_in_order(tmp_path: Path):
    base = resolve("palora", "multimnist-mini")
    assert base.train.epochs == 10 and base.train.lr == 1e-3 and base.hparams.window == 2
    config = tmp_path / "c.toml"
    config.write_text("[train]\nepochs = 3\nlr = 0.01\n[method]\nrank = 2\n")
    cfg = resolve(
        "palora", "multimnist-mini", config_file=config, assignments=["train.epochs=5", "method.sampler=dirichlet"]
    )
    assert cfg.train.epochs == 5  # --set beats --config
    assert cfg.train.lr == 0.01 and cfg.hparams.rank == 2 and cfg.hparams.sampler == "dirichlet"


def test_run_id_hashes_the_resolved_config_and_seed():
    a = resolve("palora", "multimnist-mini", seed=0)
    assert a.run_id() == resolve("palora", "multimnist-mini", seed=0).run_id()
    assert a.run_id() != resolve("palora", "multimnist-mini", seed=1).run_id()
    assert a.run_id() != resolve("palora", "multimnist-mini", assignments=["method.rank=2"]).run_id()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.epoch=3", "valid keys: train.epochs"),
        ("train.epochs=abc", "expected int"),
        ("train.lr=fast", "expected float"),
        ("method.reweight_lr=maybe", "expected a boolean"),
        ("method.bogus=1", "valid keys: method.window, .*method.rank"),
        ("optim.depth=3", "keys look like"),
        ("model.depth=3", "valid keys: model.backbone, model.weights"),
        ("train.epochs", "key=value"),
        ("method.inner_method=xyz", "valid: gb, ls"),
        ("method.sampler=uniform", "method.sampler 'uniform'; valid: annealing, annealing_dirichlet, dirichlet"),
        ("method.adapter_path=hooks", "valid: merged, activations"),
    ],
)
def test_bad_overrides_name_the_valid_choices(assignment, message):
    with pytest.raises(ConfigError, match=message):
        resolve("palora", "multimnist-mini", assignments=[assignment])


def test_rays_parse_as_a_list_of_rays():
    cfg = resolve("ls", "multimnist-mini", assignments=["method.rays=0.3,0.7;0.5,0.5"])
    assert cfg.hparams.rays == ((0.3, 0.7), (0.5, 0.5))


def test_bad_config_file(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ConfigError, match="valid tables"):
        resolve("ls", "multimnist-mini", config_file=bad)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("ls", "multimnist-mini", config_file=tmp_path / "missing.toml")


def test_literal_fields_take_one_of_their_values():
    kind = Literal["l2", "loss+", "none"]
    assert parse_value("method.normalize", "loss+", kind) == "loss+"
    with pytest.raises(ConfigError, match=r"^unknown method.normalize 'max'; valid: l2, loss\+, none$"):
        parse_value("method.normalize", "max", kind)
    with pytest.raises(ConfigError, match="valid: l2"):
        parse_value("method.normalize", 2, kind)  # a TOML number for a string choice
    assert parse_value("method.order", "2", Literal[1, 2]) == 2  # --set strings parse as the choice's type
    assert parse_value("method.order", 1, Literal[1, 2]) == 1
    with pytest.raises(ConfigError, match="valid: 1, 2"):
        parse_value("method.order", "3", Literal[1, 2])


@pytest.mark.parametrize(
    ("method", "key", "value"),
    [
        ("palora", "inner_method", "gb"),
        ("pamal", "inner_method", "gradnorm"),
        ("padora", "peft", "dora"),
        ("mgda", "normalize", "loss+"),
        ("ls", "stacking", "loop"),
        ("pamal", "sampler", "dirichlet"),
    ],
)
def test_choice_fields_resolve_from_set(method, key, value):
    assert getattr(resolve(method, "multimnist-mini", assignments=[f"method.{key}={value}"]).hparams, key) == value
