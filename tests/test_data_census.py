"""The census datasets on tiny files in the exact UCI Census-Income (KDD) layout."""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import census
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

PREPARE = Path(__file__).resolve().parent.parent / "datasets" / "census" / "prepare.py"

# Real values of each column (census-income.names), a few per column; the first three rows of the
# real census-income.data are reproduced exactly in REAL_ROWS.
POOLS: dict[str, list] = {
    "ACLSWKR": ["Not in universe", "Private", "Self-employed-not incorporated", "Local government"],
    "ADTIND": [0, 4, 33, 40],
    "ADTOCC": [0, 34, 12, 2],
    "AHGA": [
        "Children",
        "High school graduate",
        "Some college but no degree",
        "Bachelors degree(BA AB BS)",
        "Masters degree(MA MS MEng MEd MSW MBA)",
        "Doctorate degree(PhD EdD)",
        "Prof school degree (MD DDS DVM LLB JD)",
        "Associates degree-occup /vocational",
        "Associates degree-academic program",
        "10th grade",
    ],
    "AHRSPAY": [0, 0, 500, 1200],
    "AHSCOL": ["Not in universe", "High school", "College or university"],
    "AMARITL": ["Never married", "Married-civilian spouse present", "Divorced", "Widowed"],
    "AMJIND": ["Not in universe or children", "Construction", "Retail trade"],
    "AMJOCC": ["Not in universe", "Precision production craft & repair", "Sales"],
    "ARACE": ["White", "Black", "Asian or Pacific Islander"],
    "AREORGN": ["All other", "Mexican-American", "Do not know", "NA"],
    "ASEX": ["Female", "Male"],
    "AUNMEM": ["Not in universe", "No", "Yes"],
    "AUNTYPE": ["Not in universe", "Job loser - on layoff", "New entrant"],
    "AWKSTAT": ["Not in labor force", "Children or Armed Forces", "Full-time schedules"],
    "CAPGAIN": [0, 0, 15024],
    "CAPLOSS": [0, 1876],
    "DIVVAL": [0, 100, 2500],
    "FILESTAT": ["Nonfiler", "Head of household", "Joint both under 65", "Single"],
    "GRINREG": ["Not in universe", "South", "West"],
    "GRINST": ["Not in universe", "Arkansas", "Utah", "?"],
    "HHDFMX": ["Householder", "Child <18 never marr not in subfamily", "Spouse of householder"],
    "HHDREL": ["Householder", "Child under 18 never married", "Spouse of householder"],
    "MIGMTR1": ["?", "MSA to MSA", "Nonmover"],
    "MIGMTR3": ["?", "Same county", "Nonmover"],
    "MIGMTR4": ["?", "Same county", "Nonmover"],
    "MIGSAME": ["Not in universe under 1 year old", "Yes", "No"],
    "MIGSUN": ["?", "Yes", "No", "Not in universe"],
    "NOEMP": [0, 1, 4, 6],
    "PARENT": ["Not in universe", "Both parents present", "Mother only present"],
    "PEFNTVTY": ["United-States", "Mexico", "?"],
    "PEMNTVTY": ["United-States", "Mexico", "?"],
    "PENATVTY": ["United-States", "Mexico"],
    "PRCITSHP": ["Native- Born in the United States", "Foreign born- Not a citizen of U S "],  # sic: trailing space
    "SEOTR": [0, 1, 2],
    "VETQVA": ["Not in universe", "No", "Yes"],
    "VETYN": [0, 1, 2],
    "WKSWORK": [0, 52, 12],
    "YEAR": [94, 95],
    "target": ["- 50000.", "50000+."],
}
REAL_ROWS = [
    "73, Not in universe, 0, 0, High school graduate, 0, Not in universe, Widowed, Not in universe or children, "
    "Not in universe, White, All other, Female, Not in universe, Not in universe, Not in labor force, 0, 0, 0, "
    "Nonfiler, Not in universe, Not in universe, Other Rel 18+ ever marr not in subfamily, Other relative of "
    "householder, 1700.09, ?, ?, ?, Not in universe under 1 year old, ?, 0, Not in universe, United-States, "
    "United-States, United-States, Native- Born in the United States, 0, Not in universe, 2, 0, 95, - 50000.",
    "58, Self-employed-not incorporated, 4, 34, Some college but no degree, 0, Not in universe, Divorced, "
    "Construction, Precision production craft & repair, White, All other, Male, Not in universe, Not in universe, "
    "Children or Armed Forces, 0, 0, 0, Head of household, South, Arkansas, Householder, Householder, 1053.55, "
    "MSA to MSA, Same county, Same county, No, Yes, 1, Not in universe, United-States, United-States, "
    "United-States, Native- Born in the United States, 0, Not in universe, 2, 52, 94, - 50000.",
    "2, Not in universe, 0, 0, Children, 0, Not in universe, Never married, Not in universe or children, "
    "Not in universe, White, Mexican-American, Male, Not in universe, Not in universe, Children or Armed Forces, "
    "0, 0, 0, Nonfiler, Not in universe, Not in universe, Child <18 never marr not in subfamily, Child under 18 "
    "never married, 1601.75, ?, ?, ?, Not in universe under 1 year old, ?, 0, Both parents present, United-States, "
    "United-States, United-States, Native- Born in the United States, 0, Not in universe, 0, 0, 95, - 50000.",
]


def make_rows(n: int, seed: int) -> list[str]:
    """``n`` rows in the file's layout: values joined by ', ' (a space before every value but the first)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        values = []
        for column in census.COLUMNS:
            if column == "AAGE":
                values.append(str(int(rng.integers(0, 91))))
            elif column == "MARSUPWT":
                values.append(f"{rng.uniform(100, 4000):.2f}")
            else:
                pool = POOLS[column]
                values.append(str(pool[(i + int(rng.integers(0, len(pool)))) % len(pool)]))
        rows.append(", ".join(values))
    return rows


def census_files(folder: Path, n_train: int = 45, n_test: int = 20, gz: bool = False) -> dict[str, str]:
    """Write tiny census-income.data / .test (every pool value in both), one row of each to drop."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {}
    for part, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        rows = REAL_ROWS + make_rows(n, seed)
        dropped = rows[4].split(", ")
        dropped[census.COLUMNS.index("HHDFMX")] = census.DROPPED_HOUSEHOLD
        rows[4] = ", ".join(dropped)
        texts[part] = "\n".join(rows) + "\n"
        name = census.FILES[part]
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(texts[part].encode()))
        else:
            (folder / name).write_text(texts[part])
    return texts


def reference(texts: dict[str, str], tasks: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official recipe in plain pandas/numpy (pd.read_csv keeping the leading spaces, the official
    label rules with their 'Maters' prefix, get_dummies, population-std scaling on the whole training
    file, RandomState(0) split), with one vocabulary for both files and a fixed continuous order."""
    frames = {p: pd.read_csv(io.StringIO(t), header=None, names=list(census.COLUMNS)) for p, t in texts.items()}
    rules = {
        "income": ("target", lambda v: int(v != " - 50000.")),
        "age": ("AAGE", lambda v: int(v >= 40)),
        "education": (
            "AHGA",
            lambda v: int(v.strip().startswith(("Bachelors", "Some", "Maters", "Asso", "Doctorate", "Prof"))),
        ),
        "never_married": ("AMARITL", lambda v: int(v == " Never married")),
    }
    sources = [rules[t][0] for t in tasks]
    labels, kept = {}, {}
    for part, frame in frames.items():
        frame = frame[frame["HHDFMX"] != " " + census.DROPPED_HOUSEHOLD].reset_index(drop=True)
        labels[part] = np.stack([frame[rules[t][0]].map(rules[t][1]).to_numpy() for t in tasks], axis=1)
        kept[part] = frame.drop(columns=[*sources, "MIGMTR1", "MIGMTR3", "MIGMTR4", "YEAR"])
    continuous = [
        c for c in ("AAGE", "AHRSPAY", "DIVVAL", "CAPGAIN", "CAPLOSS", "WKSWORK", "MARSUPWT") if c not in sources
    ]
    dummy_columns = [c for c in kept["train"].columns if c not in continuous and c != "ASEX"]
    both = pd.concat([kept["train"], kept["test"]], keys=["train", "test"])
    dummies = pd.get_dummies(both[dummy_columns], columns=dummy_columns).astype(np.float64)
    mean = kept["train"][continuous].to_numpy(np.float64).mean(0)
    std = kept["train"][continuous].to_numpy(np.float64).std(0)
    out = {}
    for part in ("train", "test"):
        scaled = (kept[part][continuous].to_numpy(np.float64) - mean) / std
        sex = (kept[part]["ASEX"] == " Male").to_numpy(np.float64)[:, None]
        out[part] = (np.concatenate([scaled, dummies.loc[part].to_numpy(), sex], axis=1), labels[part])
    n = len(out["train"][0])
    permutation = np.random.RandomState(0).permutation(n)
    n_val = math.ceil(0.2 * n)
    x, y = out.pop("train")
    out["train"] = (x[permutation[n_val:]], y[permutation[n_val:]])
    out["val"] = (x[permutation[:n_val]], y[permutation[:n_val]])
    return out


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("name", ["census", "census-income-marital"])
def test_features_labels_and_splits_match_the_official_recipe(tmp_path: Path, name: str, gz: bool):
    texts = census_files(census.census_dir(tmp_path), gz=gz)
    tasks = census.TASK_SETS[name]
    expected = reference(texts, tasks)
    splits = census.build_splits(census.parsed_table(tmp_path), tasks)
    assert {len(splits[s][0]) for s in ("train", "val")} == {37, 10}  # 3 + 45 rows - 1 dropped, ceil(20%) to val
    assert len(splits["test"][0]) == 22
    for split, (x, y) in expected.items():
        ours, targets = splits[split]
        assert ours.dtype == torch.float32 and ours.shape == x.shape
        np.testing.assert_allclose(ours.numpy(), x, rtol=1e-5, atol=1e-5)
        assert list(targets) == list(tasks)
        for k, task in enumerate(tasks):
            assert targets[task].dtype == torch.int64
            assert targets[task].tolist() == y[:, k].tolist()


def test_feature_layout_by_hand(tmp_path: Path):
    census_files(census.census_dir(tmp_path))
    parsed = census.parsed_table(tmp_path)
    x = census.features(parsed, ("age", "education"))["train"]
    # 6 standardised continuous columns (AAGE is a task), then one-hot blocks, then ASEX
    vocab = parsed["vocab"]
    onehot = [c for c in census.CATEGORICAL if c not in ("AHGA", "ASEX")]
    assert "AMARITL" in onehot and "target" in onehot  # tasks that are off stay as inputs
    assert x.shape[1] == 6 + sum(len(vocab[c]) for c in onehot) + 1
    assert vocab["ADTIND"] == ["0", "4", "33", "40"]  # numeric codes sort as numbers, like get_dummies
    assert vocab["PRCITSHP"] == ["Foreign born- Not a citizen of U S", "Native- Born in the United States"]
    assert "NA" in vocab["AREORGN"] and "?" in vocab["GRINST"]  # kept as categories, not missing values
    assert census.DROPPED_HOUSEHOLD not in vocab["HHDFMX"]
    blocks = x[:, 6:-1]
    assert torch.equal(blocks.sum(1), torch.full((len(x),), float(len(onehot))))  # one 1 per block
    continuous = x[:, :6].double()
    torch.testing.assert_close(continuous.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(continuous.std(0, correction=0), torch.ones(6, dtype=torch.float64), atol=1e-5, rtol=0)
    # the first real row: 73-year-old widowed woman, high school graduate, income - 50000.
    first = x[0]
    assert first[-1] == 0  # Female
    offset = 6
    for column in onehot:
        size = len(vocab[column])
        if column in ("AMARITL", "target"):
            want = {"AMARITL": "Widowed", "target": "- 50000."}[column]
            assert first[offset + vocab[column].index(want)] == 1
        offset += size
    labels = census._labels(parsed, "train", "education")
    assert labels[:3].tolist() == [0, 1, 0]  # High school graduate, Some college, Children
    assert census._labels(parsed, "train", "age")[:3].tolist() == [1, 1, 0]


def test_a_category_in_one_file_only_gets_the_same_column_in_both(tmp_path: Path):
    """The joint vocabulary: the official per-file get_dummies would give the files different widths."""
    folder = census.census_dir(tmp_path)
    texts = census_files(folder)
    row = texts["test"].splitlines()[0].split(", ")
    row[census.COLUMNS.index("GRINST")] = "Alaska"
    (folder / "census-income.test").write_text(texts["test"] + ", ".join(row) + "\n")
    parsed = census.parsed_table(tmp_path)
    assert "Alaska" in parsed["vocab"]["GRINST"]
    x = census.features(parsed, census.TASK_SETS["census"])
    assert x["train"].shape[1] == x["test"].shape[1]
    onehot = [c for c in census.CATEGORICAL if c not in ("AAGE", "AHGA", "ASEX")]
    offset = 6 + sum(len(parsed["vocab"][c]) for c in onehot[: onehot.index("GRINST")])
    column = offset + parsed["vocab"]["GRINST"].index("Alaska")
    assert x["train"][:, column].sum() == 0 and x["test"][-1, column] == 1 and x["test"][:, column].sum() == 1


def test_education_follows_the_official_code():
    positives = [v for v in POOLS["AHGA"] if census.TASKS["education"].positive(v)]
    assert positives == [
        "Some college but no degree",
        "Bachelors degree(BA AB BS)",
        "Doctorate degree(PhD EdD)",
        "Prof school degree (MD DDS DVM LLB JD)",
        "Associates degree-occup /vocational",
        "Associates degree-academic program",
    ]  # Masters is a negative, as the official 'Maters' typo makes it


def test_validation_split_is_sklearns():
    model_selection = pytest.importorskip("sklearn.model_selection")
    for n in (10, 48, 1001):
        rows = np.arange(n)
        train, val = model_selection.train_test_split(rows, test_size=0.2, random_state=0)
        ours_train, ours_val = census.validation_split(n)
        assert ours_train.tolist() == train.tolist() and ours_val.tolist() == val.tolist()


def test_cache_is_written_reused_and_refreshed(tmp_path: Path):
    folder = census.census_dir(tmp_path)
    census_files(folder)
    census.parsed_table(tmp_path)
    path = census.cache_path(tmp_path)
    assert path.is_file()
    cached = torch.load(path, weights_only=True)
    assert cached["train"]["codes"].dtype == torch.int16 and cached["train"]["continuous"].shape == (47, 7)
    census_files(folder, n_train=60)  # a new file: the stamp changes and the cache is rebuilt
    assert census.parsed_table(tmp_path)["train"]["continuous"].shape == (62, 7)


def test_missing_files_message_names_them_and_the_fix(tmp_path: Path):
    folder = census.census_dir(tmp_path)
    census_files(folder)
    (folder / "census-income.test").unlink()
    with pytest.raises(MissingDataError) as err:
        census.CENSUS.load(tmp_path, "train")
    message = str(err.value)
    assert "census-income.test" in message and "census-income.data" not in message
    assert str(folder) in message and census.URL in message
    assert (
        f"python datasets/census/prepare.py --source <folder with the files or the archive> --data-root {tmp_path}"
        in (message)
    )


def test_bad_files_say_what_was_expected(tmp_path: Path):
    folder = census.census_dir(tmp_path)
    census_files(folder)
    (folder / "census-income.test").write_text("1, 2, 3\n4, 5, 6\n")
    with pytest.raises(MissingDataError, match="3 comma-separated columns, expected 42"):
        census.parsed_table(tmp_path)
    census_files(folder)
    with pytest.raises(MissingDataError, match="expected 468"):  # the tiny files give fewer features
        census.CENSUS.load(tmp_path, "val")


def write_archives(tmp_path: Path, texts: dict[str, str]) -> tuple[Path, Path]:
    """census.tar.gz (as UCI ships it) and a zip wrapping it (as the UCI dataset page serves it)."""
    tar_path = tmp_path / "census.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for part, text in texts.items():
            data = text.encode()
            info = tarfile.TarInfo(census.FILES[part])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    zip_path = tmp_path / "census+income+kdd.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.write(tar_path, "census.tar.gz")
    return tar_path, zip_path


def _run_prepare(argv: list[str], monkeypatch: pytest.MonkeyPatch, widths: dict[str, int] | None = None) -> int:
    module = load_file_module("census_prepare", PREPARE)
    with monkeypatch.context() as patch:  # the prepare entry checks the widths in bench.data.census.NUM_FEATURES
        if widths is not None:
            patch.setattr(census, "NUM_FEATURES", widths)
        return module.main(argv)


def test_prepare_script_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    texts = census_files(tmp_path / "plain")
    source_root = tmp_path / "src-root"
    census_files(census.census_dir(source_root))
    parsed = census.parse(source_root)
    widths = {name: census.features(parsed, tasks)["train"].shape[1] for name, tasks in census.TASK_SETS.items()}
    assert widths["census-income-marital"] > widths["census"]  # AAGE and AHGA in, AMARITL and target out

    tar_path, zip_path = write_archives(tmp_path, texts)
    for i, source in enumerate((tmp_path / "plain", tar_path, zip_path)):
        root = tmp_path / f"root{i}"
        assert _run_prepare(["--source", str(source), "--data-root", str(root)], monkeypatch, widths) == 0
        out = capsys.readouterr().out
        assert "rows: train 37, val 10, test 22" in out and f"census {widths['census']}" in out
        assert census.cache_path(root).is_file()
        for part, name in census.FILES.items():
            assert (census.census_dir(root) / name).read_text() == texts[part]

    # widths other than the official ones: one error line, exit code 2
    assert _run_prepare(["--source", str(tar_path), "--data-root", str(tmp_path / "r")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "(expected 468)" in err and err.count("\n") == 1
    # missing files
    (tmp_path / "plain" / "census-income.data").unlink()
    assert _run_prepare(["--source", str(tmp_path / "plain"), "--data-root", str(tmp_path / "r2")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "census-income.data[.gz]" in err and "census-income.test" not in err and census.URL in err


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The real loader on the tiny files through run_experiment. The registered spec declares the
    official 468 inputs, which tiny files cannot give, so a spec with the tiny width is registered
    under the same name (presets and loader unchanged)."""
    root = tmp_path / "data"
    census_files(census.census_dir(root))
    width = census.features(census.parsed_table(root), census.TASK_SETS["census"])["train"].shape[1]
    spec = census.census_spec("census", census.CENSUS.description, census.TASK_SETS["census"], width)
    monkeypatch.setitem(DATASETS._items, "census", spec)
    assignments = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=16"]
    cfg = resolve(method, "census", assignments=assignments)
    result = run_experiment(cfg, tmp_path / "runs", root, "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = json.loads((result.directory / "summary.json").read_text())
    assert summary["steps"] == 1 and len(summary["front"]) == 11 and summary["hv_reference"] == [1.0, 1.0]
    assert 0.0 <= summary_hypervolume(summary) <= 1.0
    values = [v for point in summary["front"] for metrics in point["metrics"].values() for v in metrics.values()]
    assert len(values) == 11 * 2 * 2 and all(math.isfinite(v) for v in values)
    if method == "ls":  # one plain MLP per ray: Linear(F, 256) + ReLU, two heads Linear(256, 2)
        assert summary["parameters"]["inference"] == width * 256 + 256 + 2 * (256 * 2 + 2)


def test_registered_specs_follow_the_official_setup():
    spec = DATASETS.get("census")
    assert spec.input_shape == (468,) and spec.objective_names == ("age", "education")
    assert [o.outputs for o in spec.objectives] == [2, 2] and spec.hv_reference == (1.0, 1.0)
    assert spec.backbone == "mlp" and dict(spec.backbone_options) == {"hidden": (256,)}
    other = DATASETS.get("census-income-marital")
    assert other.input_shape == (477,) and other.objective_names == ("income", "never_married")
    from bench.backbones import create_backbone

    net = create_backbone("mlp", spec, **spec.backbone_options)
    assert sum(p.numel() for p in net.parameters()) == 121092  # the official CENSUS_COUNT
    cfg = resolve("pamal", "census-income-marital")
    assert cfg.hparams.window == 2 and cfg.hparams.reg_coefficient == 5.0 and cfg.train.batch_size == 256
