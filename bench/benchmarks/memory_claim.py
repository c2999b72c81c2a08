"""The PaLoRA paper's memory claim, measured at every dataset's preset: PaLoRA against PaMaL and PHN-LS.

    python -m bench.benchmarks.memory_claim --out results/ [--datasets D ...] [--steps N] [--budget-gib G]

The PaLoRA paper (Dimitriadis, Frossard, Fleuret, ICLR 2025, arXiv 2407.08056) says in its abstract
that PaLoRA reduces "the memory overhead 23.8-31.7 times compared with competing PFL baselines in
scene understanding benchmarks" (Cityscapes and NYUv2). For every registered dataset with a preset
(``bench/presets/<dataset>.toml``) and each of palora, pamal and phn-ls resolved at that preset
(:func:`bench.train.config.resolve`, seed 0), on the dataset's default backbone and with no dataset file
(random samples shaped like the dataset's, :func:`bench.data.kit.synthetic.synthetic_split`), it reports:

- added parameters: the method's trainable parameters minus those of the plain backbone with its
  heads, and the overhead added / plain: the official code's measure (``CountParametersCallback``,
  see :mod:`bench.analysis.footprint`); parameters at inference too;
- training state: bytes of parameters, gradients and Adam's state (two moments and a float32 step
  counter per trainable tensor), read from the live tensors after the measured steps
  (:func:`bench.train.memory.training_state_bytes`), or counted from the parameter shapes where the model
  is too large to build here (:func:`counted_state_bytes`; the two agree on every measured row);
- step peak: what one training step adds to the process's resident memory at its peak, over what was
  resident before it (:func:`bench.train.memory.step_peak_bytes`, CPU: peak-RSS growth; the largest of
  ``--steps`` steps after one warm-up step), and the same for the plain backbone taking as many
  forwards per step as the method has rays (:class:`bench.train.stepper.PlainBackbone`, linear
  scalarisation), so the difference is what conditioning and the preset's inner method cost. Models
  whose step is estimated above ``--budget-gib`` (:func:`estimated_step_bytes`) are not stepped;

and, for each measure, PaMaL's overhead divided by each method's. Every model is built first on the
meta device (shapes only, no memory) to count its parameters. Writes ``memory-claim.csv``,
``memory-claim.md`` and ``figures/memory-claim.{png,pdf}`` under ``--out``. A benchmark, not a
test: nothing here asserts a number.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bench.core import atomic
from bench.core.cli import Parser, help_text
from bench.core.env import host
from bench.core.errors import UserError
from bench.core.registry import DATASETS, METHODS, load_all
from bench.core.spec import DatasetSpec, Method, MultiTaskNet
from bench.data.kit.synthetic import synthetic_split
from bench.train.config import PRESETS_DIR, RunConfig, preset_table, resolve
from bench.train.memory import training_state_bytes
from bench.train.stepper import PlainBackbone, Stepper, rays_per_step
from bench.train.trial import backbone_factory, build_trial

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


SUBJECT, REFERENCE, PLAIN = "palora", "pamal", "plain"
COMPARED = ("palora", "pamal", "phn-ls")
PAPER_RANGE = (23.8, 31.7)
PAPER_DATASETS = ("cityscapes", "nyuv2")
PAPER_QUOTE = (
    "reducing the memory overhead 23.8-31.7 times compared with competing PFL baselines in scene "
    "understanding benchmarks"
)
ADAM_STEP_BYTES = 4
"""Adam's step counter: one float32 scalar tensor per trainable parameter tensor (not capturable, not fused)."""
SMALL_BATCH, LARGE_INPUT_BATCH = 8, 2
LARGE_INPUT = 2**14
"""Inputs with more values than this (Cityscapes' and NYUv2's images) are stepped at the smaller batch."""
WARMUP_STEPS = 1
"""Steps before measuring: the first allocates Adam's moments, which are state, not a step's peak."""
DEFAULT_BUDGET_GIB = 4.0
MIB, GIB = 2**20, 2**30
NOT_MEASURED = "not measured"


@dataclasses.dataclass(frozen=True)
class Counts:
    """A built model's parameter counts and bytes (:func:`count_parameters`)."""

    trainable: int
    inference: int
    parameter_bytes: int
    trainable_bytes: int
    trainable_tensors: int


def preset_datasets() -> list[str]:
    """Registered datasets that have a preset file, ``bench/presets/<dataset>.toml``."""
    return [name for name in DATASETS.names() if (PRESETS_DIR / f"{name}.toml").is_file()]


def batch_for(spec: DatasetSpec) -> int:
    """The batch every model of a dataset is stepped at: :data:`LARGE_INPUT_BATCH` for large inputs."""
    return LARGE_INPUT_BATCH if math.prod(spec.input_shape) > LARGE_INPUT else SMALL_BATCH


def run_config(method: str, dataset: str, batch: int) -> RunConfig:
    """``method``'s run on ``dataset`` at its preset (seed 0), at ``batch``, its rays one after another."""
    sets = [f"train.batch_size={batch}", f"train.eval_batch_size={batch}", "train.ray_batching=sequential"]
    return resolve(method, dataset, 0, assignments=sets)


def count_parameters(method: Method, make_backbone: Callable[..., MultiTaskNet]) -> Counts:
    """Parameters of ``method``'s conditioned net, built on the meta device (shapes, no storage)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        cnet = method.build(make_backbone)
    trainable = [p for p in cnet.parameters() if p.requires_grad]
    return Counts(
        trainable=sum(p.numel() for p in trainable),
        inference=int(cnet.inference_parameters()),
        parameter_bytes=sum(p.numel() * p.element_size() for p in cnet.parameters()),
        trainable_bytes=sum(p.numel() * p.element_size() for p in trainable),
        trainable_tensors=len(trainable),
    )


def counted_state_bytes(counts: Counts) -> int:
    """Training state from the shapes: every parameter, a gradient and Adam's two moments per trainable
    parameter, and Adam's step counter per trainable tensor (what :func:`training_state_bytes` reads)."""
    return counts.parameter_bytes + 3 * counts.trainable_bytes + ADAM_STEP_BYTES * counts.trainable_tensors


def overhead(value: float, plain: float) -> float:
    """``value`` over the plain model's, relative to it: value / plain - 1 (official overhead)."""
    return value / plain - 1.0 if plain > 0 else math.nan


def ratio(reference: float, subject: float) -> float:
    """How many times ``subject``'s overhead fits in ``reference``'s; NaN unless both are positive."""
    if not (reference > 0 and subject > 0):  # also False for NaN
        return math.nan
    return reference / subject


def rounded_ratio(reference: float, subject: float, decimals: int = 1) -> float:
    """:func:`ratio` of two relative overheads after rounding each to ``decimals`` percentage points
    (a paper's table precision)."""
    if not (math.isfinite(reference) and math.isfinite(subject)):
        return math.nan
    return ratio(round(100 * reference, decimals), round(100 * subject, decimals))


def saved_bytes_per_sample(net: nn.Module, spec: DatasetSpec, x: Tensor, targets: dict[str, Tensor]) -> float:
    """Bytes autograd keeps for backward per sample (parameters excluded) in a training forward and
    loss of ``net`` on two samples: the activation part of a step, for :func:`estimated_step_bytes`."""
    parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outputs = net.train()(x[:2])
        loss = sum(o.loss(outputs[o.name], targets[o.name][:2]) for o in spec.objectives)
    del outputs, loss
    return sum(saved.values()) / 2


def estimated_step_bytes(counts: Counts, backbone_bytes: int, rays: int, batch: int, per_sample: float) -> int:
    """A rough upper estimate of a model's memory while it steps: its training state, each ray's
    activations and weights, and a temporary the size of the trainable parameters (Adam's update).
    Only decides what is stepped here (``--budget-gib``); never reported as a measurement."""
    per_ray = batch * per_sample + backbone_bytes
    return int(counted_state_bytes(counts) + rays * per_ray + counts.trainable_bytes)


def measure_step(
    cfg: RunConfig, data: tuple[Tensor, dict[str, Tensor]], steps: int, method: Method | None
) -> dict[str, Any]:
    """Build ``cfg``'s trial (``method`` in place of its own, as the plain backbone) on ``data`` on the
    CPU, take :data:`WARMUP_STEPS` then ``steps`` steps: the largest step peak and the training state."""
    trial = build_trial(cfg, Path("/nonexistent"), torch.device("cpu"), workers=0, method=method, data=data)
    stepper = Stepper(trial, synthetic=True)
    for _ in range(WARMUP_STEPS):
        stepper.step()
    peak, kind = max(stepper.step_peak() for _ in range(steps))
    state = training_state_bytes(trial.cnet, trial.optimizer)["total"]
    del stepper, trial
    gc.collect()
    return {"step_peak_bytes": peak, "step_peak_kind": kind, "measured_state_bytes": state}


class DatasetBench:
    """One dataset's plain model and compared methods, counted and (within the budget) stepped on
    random samples shaped like the dataset's, all at one batch (:func:`batch_for`)."""

    def __init__(self, name: str, steps: int, budget_bytes: float) -> None:
        self.name, self.steps, self.budget = name, steps, budget_bytes
        self.spec: DatasetSpec = DATASETS.get(name)
        self.batch = batch_for(self.spec)
        self.plain_cfg = run_config(SUBJECT, name, self.batch)  # the plain model's optimizer and batches
        self.make_backbone = backbone_factory(self.spec, self.plain_cfg.model, Path("/nonexistent"))
        with torch.random.fork_rng(devices=[]):
            backbone = self.make_backbone()
            self.data = synthetic_split(self.spec, backbone, 2 * self.batch)
            self.per_sample = saved_bytes_per_sample(backbone, self.spec, *self.data)
        self.plain = count_parameters(PlainBackbone(self.spec, 1), self.make_backbone)
        self.plain_steps: dict[int, dict[str, Any]] = {}

    def step(self, cfg: RunConfig, counts: Counts, rays: int, method: Method | None) -> dict[str, Any]:
        """:func:`measure_step`, or why it was not taken (its estimate is over the budget)."""
        estimate = estimated_step_bytes(counts, self.plain.parameter_bytes, rays, self.batch, self.per_sample)
        if estimate > self.budget:
            note = f"estimated {estimate / GIB:.1f} GiB > budget {self.budget / GIB:g} GiB"
            return {"step_peak_bytes": math.nan, "step_peak_kind": NOT_MEASURED, "step_note": note}
        return {**measure_step(cfg, self.data, self.steps, method), "step_note": ""}

    def plain_step(self, rays: int) -> dict[str, Any]:
        """The plain backbone's step with ``rays`` forwards (measured once per ray count)."""
        if rays not in self.plain_steps:
            self.plain_steps[rays] = self.step(self.plain_cfg, self.plain, rays, PlainBackbone(self.spec, rays))
        return self.plain_steps[rays]

    def row(self, method: str) -> dict[str, Any]:
        """One model's counts and step, and the plain model's step at the same rays per step."""
        hparams: dict[str, Any] = {}
        if method == PLAIN:
            counts, rays = self.plain, 1
            stepped = self.plain_step(1)
        else:
            cfg = run_config(method, self.name, self.batch)
            hparams = dataclasses.asdict(cfg.hparams)
            model = METHODS.get(method)(cfg.hparams, self.spec)
            counts, rays = count_parameters(model, self.make_backbone), rays_per_step(model)
            stepped = self.step(cfg, counts, rays, None)
        measured = math.isfinite(stepped["step_peak_bytes"])
        return {
            "dataset": self.name,
            "backbone": self.spec.backbone,
            "tasks": self.spec.num_tasks,
            "method": method,
            "rank": hparams.get("rank", ""),
            "window": hparams.get("window", ""),
            "rays_per_step": rays,
            "batch": self.batch,
            "plain_params": self.plain.trainable,
            "trainable_params": counts.trainable,
            "inference_params": counts.inference,
            "added_params": counts.trainable - self.plain.trainable,
            "param_overhead": overhead(counts.trainable, self.plain.trainable),
            "counted_state_bytes": counted_state_bytes(counts),
            **stepped,
            "plain_step_peak_bytes": self.plain_step(rays)["step_peak_bytes"] if measured else math.nan,
        }

    def rows(self, log: Callable[[str], None]) -> list[dict[str, Any]]:
        """The plain model's row and each compared method's, with :func:`derived` columns."""
        out = []
        for method in (PLAIN, *COMPARED):
            started = time.perf_counter()
            out.append(self.row(method))
            log(f"{self.name:22s} {method:7s} {time.perf_counter() - started:7.1f} s  {out[-1]['step_note']}")
        return derived(out)


RATIOS = {"params": "added_params", "state": "state_added_bytes", "step": "step_peak_added_bytes"}
"""``pamal_ratio_<key>``: PaMaL's value of the column divided by the row's."""


def derived(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dataset's rows (the plain model's first) with the training state (measured, else counted),
    the state and step peak added over the plain model, and PaMaL's overheads over each row's
    (:data:`RATIOS`; the parameter ratio also with the overheads rounded, :func:`rounded_ratio`)."""
    plain_state = rows[0]["counted_state_bytes"]
    for row in rows:
        measured = row.get("measured_state_bytes", math.nan)
        row["state_source"] = "measured" if math.isfinite(measured) else "counted"
        row["training_state_bytes"] = measured if math.isfinite(measured) else row["counted_state_bytes"]
        row["state_added_bytes"] = row["training_state_bytes"] - plain_state
        row["state_overhead"] = overhead(row["training_state_bytes"], plain_state)
        row["step_peak_added_bytes"] = row["step_peak_bytes"] - row["plain_step_peak_bytes"]
        row["step_overhead"] = overhead(row["step_peak_bytes"], row["plain_step_peak_bytes"])
    reference = next(row for row in rows if row["method"] == REFERENCE)
    for row in rows:
        plain = row["method"] == PLAIN
        for key, column in RATIOS.items():
            row[f"pamal_ratio_{key}"] = math.nan if plain else ratio(reference[column], row[column])
        rounded = rounded_ratio(reference["param_overhead"], row["param_overhead"])
        row["pamal_ratio_params_rounded"] = math.nan if plain else rounded
    return rows


COLUMNS = [
    "dataset",
    "backbone",
    "tasks",
    "method",
    "rank",
    "window",
    "rays_per_step",
    "batch",
    "plain_params",
    "trainable_params",
    "inference_params",
    "added_params",
    "param_overhead",
    "training_state_bytes",
    "state_source",
    "counted_state_bytes",
    "state_added_bytes",
    "state_overhead",
    "step_peak_bytes",
    "plain_step_peak_bytes",
    "step_peak_added_bytes",
    "step_overhead",
    "step_peak_kind",
    "step_note",
    "pamal_ratio_params",
    "pamal_ratio_params_rounded",
    "pamal_ratio_state",
    "pamal_ratio_step",
]


# ---- the report -----------------------------------------------------------------------------


def num(value: Any, spec: str = ",.0f") -> str:
    """``value`` formatted, or an em dash for NaN."""
    return "—" if isinstance(value, float) and not math.isfinite(value) else format(value, spec)


def mib(value: float) -> str:
    return num(value / MIB, ",.2f")


def percent(value: float) -> str:
    return num(100 * value, ",.1f") + " %"


def times(value: float) -> str:
    """A ratio: one decimal from 1 up, three below; an em dash for NaN."""
    return "—" if not math.isfinite(value) else f"{value:.1f}×" if value >= 1 else f"{value:.3f}×"


def dataset_order(table: pd.DataFrame) -> list[str]:
    """Datasets by the plain model's size, then name."""
    plain = table[table["method"] == PLAIN].sort_values(["plain_params", "dataset"])
    return plain["dataset"].tolist()


def by_method(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    return table[table["dataset"] == dataset].set_index("method")


def headline(table: pd.DataFrame) -> str:
    """Per dataset: the presets, what each method adds, and PaMaL's overhead over PaLoRA's."""
    lines = [
        "| dataset | backbone (plain params) | T | PaLoRA rank / window | PaMaL window | batch "
        "| PaLoRA adds | PaMaL adds | PHN-LS adds | **PaMaL ÷ PaLoRA: params** | params, overheads rounded "
        "| training state | step peak | paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dataset_order(table):
        rows = by_method(table, dataset)
        palora, pamal, phn = rows.loc[SUBJECT], rows.loc[REFERENCE], rows.loc["phn-ls"]
        adds = [f"{num(r['added_params'])} ({percent(r['param_overhead'])})" for r in (palora, pamal, phn)]
        paper = f"{PAPER_RANGE[0]}–{PAPER_RANGE[1]}×" if dataset in PAPER_DATASETS else ""
        cells = [
            dataset,
            f"{palora['backbone']} ({num(palora['plain_params'])})",
            str(palora["tasks"]),
            f"{palora['rank']} / {palora['window']}",
            str(pamal["window"]),
            str(palora["batch"]),
            *adds,
            f"**{times(palora['pamal_ratio_params'])}**",
            times(palora["pamal_ratio_params_rounded"]),
            times(palora["pamal_ratio_state"]),
            times(palora["pamal_ratio_step"]),
            paper,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail(table: pd.DataFrame) -> str:
    """Every model's numbers."""
    lines = [
        "| dataset | model | rays / step | trainable params | inference params | added params | overhead "
        "| training state MiB | state added MiB | step peak MiB | plain step peak MiB, same rays "
        "| step peak added MiB | PaMaL ÷ this: params / state / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dataset_order(table):
        for method, row in by_method(table, dataset).iterrows():
            ratios = " / ".join(times(row[f"pamal_ratio_{key}"]) for key in RATIOS)
            cells = [
                dataset,
                str(method),
                str(row["rays_per_step"]),
                num(row["trainable_params"]),
                num(row["inference_params"]),
                num(row["added_params"]),
                percent(row["param_overhead"]),
                mib(row["training_state_bytes"]) + ("" if row["state_source"] == "measured" else " (counted)"),
                mib(row["state_added_bytes"]),
                mib(row["step_peak_bytes"]),
                mib(row["plain_step_peak_bytes"]),
                mib(row["step_peak_added_bytes"]),
                "" if method == PLAIN else ratios,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_check(table: pd.DataFrame) -> list[str]:
    """One line per paper dataset (our ratios, the parameter one also rounded), then the verdict."""
    rows = table[(table["method"] == SUBJECT) & table["dataset"].isin(PAPER_DATASETS)]
    if rows.empty:
        return ["Neither of the paper's datasets was in this run."]
    lines = []
    for row in rows.to_dict("records"):
        pamal = row["param_overhead"] * row["pamal_ratio_params"]
        lines.append(
            f"- **{row['dataset']}** (T = {row['tasks']}, rank {row['rank']}): PaLoRA adds "
            f"{num(100 * row['param_overhead'], '.2f')} % of the plain model's parameters, PaMaL "
            f"{num(100 * pamal, '.0f')} %: **{num(row['pamal_ratio_params'], '.2f')}×** "
            f"({num(row['pamal_ratio_params_rounded'], '.2f')}× with both overheads rounded to 0.1 %); "
            f"training state {times(row['pamal_ratio_state'])}, step peak {times(row['pamal_ratio_step'])}."
        )
    ours = (rows["pamal_ratio_params"].min(), rows["pamal_ratio_params"].max())
    rounded = (rows["pamal_ratio_params_rounded"].min(), rows["pamal_ratio_params_rounded"].max())
    exact = len(rows) == len(PAPER_DATASETS) and tuple(round(v, 1) for v in rounded) == PAPER_RANGE
    verdict = (
        "With both overheads rounded to 0.1 % first they give the paper's two ends exactly, which suggests the "
        "paper divided overheads it had rounded that way (our inference; the abstract does not say)."
        if exact
        else f"With both overheads rounded to 0.1 % first: {rounded[0]:.1f}–{rounded[1]:.1f}×."
    )
    return [
        *lines,
        "",
        f"Our parameter ratios span {ours[0]:.1f}–{ours[1]:.1f}×, the paper's {PAPER_RANGE[0]}–{PAPER_RANGE[1]}×. "
        + verdict,
        "Every parameter of every method here is trained with Adam, so the training-state ratio is the "
        "parameter ratio up to Adam's per-tensor step counters.",
    ]


def step_check(table: pd.DataFrame) -> list[str]:
    """The step peak on the paper's datasets where both were stepped, what it includes, and how far it
    moves between identical models (its noise)."""
    lines = []
    for dataset in PAPER_DATASETS:
        rows = by_method(table, dataset) if dataset in set(table["dataset"]) else None
        if rows is None or not math.isfinite(rows.loc[SUBJECT, "pamal_ratio_step"]):
            continue
        palora, pamal = rows.loc[SUBJECT], rows.loc[REFERENCE]
        lines.append(
            f"- **{dataset}**: a PaLoRA step adds {mib(palora['step_peak_added_bytes'])} MiB to the plain step, a "
            f"PaMaL step {mib(pamal['step_peak_added_bytes'])} MiB ({times(palora['pamal_ratio_step'])}); PaLoRA's "
            f"persistent state adds only {mib(palora['state_added_bytes'])} MiB."
        )
    if lines:
        lines += [
            "",
            "So the transient memory of a step shrinks far less than the parameters do. A step builds each ray's "
            "weights at full size (PaLoRA's W + s Σ λ_k B_k A_k, PaMaL's Σ λ_k θ_k) and back-propagates through "
            "them, whatever the rank, and it includes the preset's inner method: where it is gradient balancing "
            "(`gb` / `gradnorm`), per-task gradients of the shared parameters, while the plain step is linear "
            "scalarisation.",
        ]
    spreads = []
    for names in identical_groups(table).values():
        values = table[(table["method"] == SUBJECT) & table["dataset"].isin(names)]["pamal_ratio_step"].dropna()
        if len(names) > 1 and len(values) > 1:
            spreads.append(f"{', '.join(names)}: {times(values.min())} to {times(values.max())}")
    if spreads:
        lines += [
            "",
            "The step-peak ratio is noise where the steps add little: on identical models it ranges "
            f"({'; '.join(spreads)}). Read it only where the added peaks are tens of MiB or more.",
        ]
    return lines


def state_check(table: pd.DataFrame) -> str:
    """Whether the counted training state equals the measured one on every measured row."""
    measured = table[table["state_source"] == "measured"]
    same = bool((measured["training_state_bytes"] == measured["counted_state_bytes"]).all())
    return (
        f"On all {len(measured)} stepped models the counted state {'equals' if same else 'DIFFERS FROM'} the measured."
    )


def identical_groups(table: pd.DataFrame) -> dict[str, list[str]]:
    """Datasets whose rows are identical apart from the name (same backbone, tasks and preset), each set
    keyed by the dataset whose preset file holds the tables the others extend (else its first)."""
    keys = ["method", "backbone", "tasks", "rank", "window", "trainable_params", "counted_state_bytes"]
    groups: dict[tuple, list[str]] = {}
    for dataset in dataset_order(table):
        rows = table[table["dataset"] == dataset].sort_values("method")[keys]
        groups.setdefault(tuple(rows.itertuples(index=False, name=None)), []).append(dataset)
    return {next((n for n in names if owns_preset(n)), names[0]): names for names in groups.values()}


def owns_preset(dataset: str) -> bool:
    """Whether ``dataset``'s PaLoRA preset is in its own file (not one it ``extends``)."""
    return preset_table(dataset, SUBJECT)[1].startswith(f"{dataset}.toml")


COLUMN_NOTES = [
    "- **added params**: trainable parameters of the method's model minus those of the plain backbone with its "
    "heads (one multi-task model); **overhead** = added / plain, the official code's measure (nik-dim/palora "
    "`CountParametersCallback`: trainable / vanilla model − 1). PHN's hypernetwork replaces the backbone's "
    "parameters (its target has none of its own), so what it adds can be negative (ResNet-18). **inference "
    "params**: the model for one chosen ray (PaLoRA merges its adapters, PaMaL sums its copies, PHN emits the "
    "target's weights): the plain model's size for all three.",
    "- **training state**: bytes of parameters + gradients + Adam's two moments + Adam's float32 step counter per "
    "trainable tensor, read from the live tensors after the measured steps (`training_state_bytes`); "
    "*(counted)*: a model not stepped here, its state counted from the parameter shapes. {state_check} "
    "**state added** = state − the plain model's.",
    "- **step peak**: growth of the process's peak resident memory (Linux `VmHWM`, reset after `malloc_trim` "
    "just before the step) over its resident memory before the step; the largest over the measured steps, after "
    "one warm-up step (`bench.train.memory.step_peak_bytes`). It holds what a step allocates and frees again: "
    "activations kept for backward, each ray's merged or combined weights, gradients (set to None between steps) "
    "and the optimizer's temporaries, not the persistent state. Allocator granularity makes it noisy for the small "
    "models, whose activations are kilobytes. **plain step peak, same rays**: the plain backbone taking as many "
    "forwards per step as the method has rays and linear scalarisation, so **step peak added** = method − plain is "
    "what conditioning and the preset's inner method cost at the preset's window.",
    "- **PaMaL ÷ this**: PaMaL's added parameters (the ratio of the overheads: both share the plain denominator), "
    "added training state and added step peak, each divided by this model's; a dash where either is not "
    "positive or not measured. **rounded**: the parameter ratio after rounding both overheads to 0.1 %.",
]


def markdown(table: pd.DataFrame, command: str, seconds: float, budget_bytes: float) -> str:
    """``memory-claim.md``: how it was measured, the headline, the paper check, every model, the columns."""
    order = dataset_order(table)
    batches = table.groupby("dataset")["batch"].first()
    batch_text = "; ".join(
        f"{b} for {', '.join(d for d in order if batches[d] == b)}" for b in sorted(set(batches), reverse=True)
    )
    skipped = table[table["step_peak_kind"] == NOT_MEASURED]
    skipped_text = "; ".join(f"{r.dataset} {r.method} ({r.step_note})" for r in skipped.itertuples()) or "none"
    alike = "; ".join(", ".join(names) for names in identical_groups(table).values() if len(names) > 1) or "none"
    notes = [note.format(state_check=state_check(table)) for note in COLUMN_NOTES]
    step = step_check(table)
    return "\n".join(
        [
            "# The PaLoRA paper's memory claim, measured",
            "",
            "The PaLoRA paper (Dimitriadis, Frossard, Fleuret, ICLR 2025, arXiv 2407.08056) says in its abstract that "
            f'PaLoRA is "{PAPER_QUOTE}" (Cityscapes and NYUv2, on SegNet). Below, the parameters, training state and '
            "step memory that PaLoRA, PaMaL and PHN-LS add to the plain multi-task model, at every dataset's preset.",
            "",
            f"- **Command:** `{command}` ({seconds / 60:.1f} min).",
            f"- **Machine:** {host()}; Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), CPU only, shared with other jobs; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
            "- **Models:** each method resolved at the dataset's preset (`bench/presets/<dataset>.toml`, seed 0) on "
            "the dataset's default backbone, built and stepped as `bench run` does (`bench.train.trial.build_trial`, "
            "float32, rays one after another) on random samples shaped like the dataset's: no dataset file is read.",
            f"- **Batch**, the same for every model of a dataset: {batch_text}.",
            f"- **Identical rows** (same backbone, tasks and preset; the figure draws each set once): {alike}.",
            f"- **Not stepped** (estimated step memory above `--budget-gib {budget_bytes / GIB:g}`; the estimate only "
            f"decides what runs): {skipped_text}.",
            "",
            "## PaMaL's overhead ÷ PaLoRA's",
            "",
            headline(table),
            "",
            "## Against the paper",
            "",
            *paper_check(table),
            "",
            *(["## The step's memory", "", *step, ""] if step else []),
            "![Added parameters and training state per dataset](figures/memory-claim.png)",
            "",
            "*Added parameters (top) and added training state (bottom) over the plain model, log scale, per dataset at "
            "its preset; above each group, PaMaL's overhead ÷ PaLoRA's. Shaded: the paper's two benchmarks.*",
            "",
            "## Every model",
            "",
            detail(table),
            "",
            "## Columns",
            "",
            *notes,
            "",
        ]
    )


BAR_WIDTH = 0.8 / len(COMPARED)


def bar_offset(*methods: str) -> float:
    """Where the bars of ``methods`` are centred, from the group's centre (in groups)."""
    return float(np.mean([(COMPARED.index(m) - (len(COMPARED) - 1) / 2) * BAR_WIDTH for m in methods]))


def bar_group(ax: plt.Axes, center: float, rows: pd.DataFrame, column: str, unit: float) -> None:
    """One dataset's bars, a method each (a value <= 0, which a log axis cannot draw, as "<0")."""
    from bench.analysis.style import method_style

    for method in COMPARED:
        value, x = rows.loc[method, column] / unit, center + bar_offset(method)
        color = method_style(method).color
        if value > 0:
            ax.bar(x, value, width=0.95 * BAR_WIDTH, color=color, zorder=2)
        else:
            ax.annotate(
                "<0",
                (x, 0),
                xytext=(0, 2),
                xycoords=("data", "axes fraction"),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                color=color,
            )


def figure(table: pd.DataFrame) -> plt.Figure:
    """Grouped log-scale bars per dataset (one per identical set): added parameters and added training
    state of each compared method, PaMaL ÷ PaLoRA above each group, the paper's datasets shaded."""
    import matplotlib

    matplotlib.use("Agg")  # files only, also without a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from bench.analysis.style import FULL, method_style, paper_rc

    groups = identical_groups(table)
    order = list(groups)
    panels = (
        ("added_params", "added parameters", 1.0, "pamal_ratio_params"),
        ("state_added_bytes", "added training state (MiB)", MIB, "pamal_ratio_state"),
    )
    with paper_rc():
        fig, axes = plt.subplots(2, 1, figsize=(FULL, 4.6), sharex=True, layout="constrained")
        for ax, (column, label, unit, ratio_column) in zip(axes, panels, strict=True):
            for g, dataset in enumerate(order):
                rows = by_method(table, dataset)
                if dataset in PAPER_DATASETS:
                    ax.axvspan(g - 0.48, g + 0.48, color="0.92", zorder=0, linewidth=0)
                bar_group(ax, g, rows, column, unit)
                top = rows.loc[[SUBJECT, REFERENCE], column].max() / unit
                ax.annotate(
                    times(rows.loc[SUBJECT, ratio_column]),
                    (g + bar_offset(SUBJECT, REFERENCE), top),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    fontweight="bold",
                )
            ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.text(0.005, 0.97, "bold: PaMaL ÷ PaLoRA", transform=ax.transAxes, va="top", fontsize=6.5)
            ax.margins(y=0.3)
            ax.grid(axis="y", which="major", color="0.88", linewidth=0.5, zorder=0)
            ax.set_xlim(-0.5, len(order) - 0.5)
        ticks = []
        for dataset in order:
            alike = f" (+{len(groups[dataset]) - 1})" if len(groups[dataset]) > 1 else ""
            rows = by_method(table, dataset).loc[SUBJECT]
            ticks.append(f"{dataset}{alike}\n{rows['backbone']}, T={rows['tasks']}")
        axes[1].set_xticks(range(len(order)), ticks, fontsize=6)
        handles = [Patch(color=method_style(m).color) for m in COMPARED] + [Patch(color="0.92")]
        names = [*COMPARED, f"paper's datasets (PaMaL ÷ PaLoRA = {PAPER_RANGE[0]}–{PAPER_RANGE[1]}×)"]
        axes[0].legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(names))
    return fig


def command_line(argv: list[str]) -> str:
    return " ".join(["python -m bench.benchmarks.memory_claim", *argv])


def main(argv: list[str] | None = None, prog: str = "python -m bench.benchmarks.memory_claim") -> int:
    parser = Parser(prog=prog, description=help_text(__doc__))
    parser.add_argument("--out", type=Path, required=True, help="folder for memory-claim.{csv,md} and figures/")
    parser.add_argument("--datasets", nargs="*", default=None, help="default: every dataset with a preset")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per model, after one warm-up (default 2)")
    parser.add_argument(
        "--budget-gib",
        type=float,
        default=DEFAULT_BUDGET_GIB,
        help=f"step no model whose step is estimated above this (default {DEFAULT_BUDGET_GIB:g} GiB)",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    try:
        load_all()
        if args.steps < 1 or args.budget_gib <= 0:
            raise UserError(f"--steps must be >= 1 and --budget-gib > 0, got {args.steps} and {args.budget_gib}")
        datasets = args.datasets or preset_datasets()
        for name in datasets:
            DATASETS.check(name)
        started = time.perf_counter()
        rows = []
        for name in datasets:
            rows += DatasetBench(name, args.steps, args.budget_gib * GIB).rows(lambda line: print(line, flush=True))
        seconds = time.perf_counter() - started
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows)[COLUMNS]
    rank = {name: k for k, name in enumerate(dataset_order(table))}
    table = table.sort_values("dataset", key=lambda names: names.map(rank), kind="stable").reset_index(drop=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out / "memory-claim.csv", table.to_csv(index=False))
    atomic.write_text(args.out / "memory-claim.md", markdown(table, command_line(argv), seconds, args.budget_gib * GIB))
    from bench.analysis.figures import save

    save(figure(table), args.out / "figures", "memory-claim")
    print(f"wrote {args.out / 'memory-claim.md'} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
