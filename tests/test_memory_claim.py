"""bench.benchmarks.memory_claim's arithmetic: overheads and ratios on known values, the counted training state,
and the parameters PaLoRA and PaMaL add against their closed forms (no step is timed or measured)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from bench.benchmarks.memory_claim import (
    PAPER_RANGE,
    Counts,
    count_parameters,
    counted_state_bytes,
    derived,
    identical_groups,
    markdown,
    overhead,
    preset_datasets,
    ratio,
    rounded_ratio,
)
from bench.core.registry import DATASETS, METHODS
from bench.train.config import resolve
from bench.train.memory import training_state_bytes
from bench.train.trial import make_optimizer
from tests.support import backbone_maker


def test_overhead_and_ratio_on_known_values():
    assert overhead(110, 100) == pytest.approx(0.1) and overhead(100, 100) == 0.0
    assert math.isnan(overhead(5, 0))
    assert ratio(100.0, 4.0) == 25.0
    for reference, subject in ((1.0, 0.0), (1.0, -2.0), (0.0, 1.0), (math.nan, 1.0), (1.0, math.nan)):
        assert math.isnan(ratio(reference, subject))
    # The paper's ends from overheads rounded to 0.1 %: Cityscapes 100 % / 4.2 %, NYUv2 200 % / 6.3 %
    cityscapes, nyuv2 = rounded_ratio(1.0, 0.041863), rounded_ratio(2.0, 0.063288)
    assert cityscapes == pytest.approx(100 / 4.2) and nyuv2 == pytest.approx(200 / 6.3)
    assert (round(cityscapes, 1), round(nyuv2, 1)) == PAPER_RANGE
    assert ratio(1.0, 0.041863) == pytest.approx(23.887, abs=1e-3)  # unrounded
    assert math.isnan(rounded_ratio(math.nan, 0.1))


def test_counted_state_is_parameters_plus_gradient_and_two_moments_plus_a_step_counter_per_tensor():
    counts = Counts(trainable=10, inference=10, parameter_bytes=48, trainable_bytes=40, trainable_tensors=3)
    assert counted_state_bytes(counts) == 48 + 3 * 40 + 4 * 3


def closed_form_palora(net: nn.Module, tasks: int, rank: int) -> int:
    """T rank-r pairs per layer: r (in + out) per Linear; r kh kw (in + out) per Conv2d (loralib's
    layout, A: (r kh) x (in kw), B: (out kh) x (r kw))."""
    total = 0
    for module in net.modules():
        if isinstance(module, nn.Linear):
            total += tasks * rank * (module.in_features + module.out_features)
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += tasks * rank * kh * kw * (module.in_channels + module.out_channels)
    return total


@pytest.mark.parametrize(("dataset", "rank"), [("multimnist", 1), ("multimnist3", 2)])
def test_palora_adds_the_closed_form_adapters_on_multilenet(dataset: str, rank: int):
    spec = DATASETS.get(dataset)
    make = backbone_maker(spec)
    hparams = dataclasses.replace(resolve("palora", dataset).hparams, rank=rank)
    counts = count_parameters(METHODS.get("palora")(hparams, spec), make)
    plain = sum(p.numel() for p in make().parameters())
    added = counts.trainable - plain
    assert added == closed_form_palora(make(), spec.num_tasks, rank)
    assert counts.inference == plain
    if dataset == "multimnist":  # by hand: convs 2*25*(1+10) + 2*25*(10+20), linear 2*(320+50), 2 heads 2*(100+60)
        assert added == 550 + 1500 + 740 + 2 * (200 + 120) == 3430


@pytest.mark.parametrize("dataset", ["multimnist3", "census"])
def test_pamal_adds_t_minus_one_whole_models(dataset: str):
    spec = DATASETS.get(dataset)
    make = backbone_maker(spec)
    counts = count_parameters(METHODS.get("pamal")(resolve("pamal", dataset).hparams, spec), make)
    plain = sum(p.numel() for p in make().parameters())
    assert counts.trainable - plain == (spec.num_tasks - 1) * plain
    assert counts.inference == plain


def test_meta_counts_match_a_real_build_and_the_live_training_state():
    spec = DATASETS.get("multimnist")
    make = backbone_maker(spec)
    cfg = resolve("palora", "multimnist")
    method = METHODS.get("palora")(cfg.hparams, spec)
    counts = count_parameters(method, make)
    cnet = method.build(make)
    assert counts.trainable == sum(p.numel() for p in cnet.parameters() if p.requires_grad)
    optimizer = make_optimizer(cfg, method, cnet)
    sum(out.sum() for out in cnet(torch.rand(2, 1, 28, 28), torch.tensor([0.5, 0.5])).values()).backward()
    optimizer.step()
    assert training_state_bytes(cnet, optimizer)["total"] == counted_state_bytes(counts)


def fake_rows(dataset: str, plain: int, added: dict[str, int], tasks: int = 2) -> list[dict[str, Any]]:
    """One dataset's rows as :class:`bench.benchmarks.memory_claim.DatasetBench` makes them: every parameter
    trainable, 16 bytes of state each, and a step peak of (1000 + added) bytes over a plain 1000."""
    rows = []
    for method in ("plain", "palora", "pamal", "phn-ls"):
        extra = added.get(method, 0)
        rows.append(
            {
                "dataset": dataset,
                "backbone": "segnet",
                "tasks": tasks,
                "method": method,
                "rank": 4 if method == "palora" else "",
                "window": {"palora": 2, "pamal": 3}.get(method, ""),
                "rays_per_step": 1,
                "batch": 2,
                "plain_params": plain,
                "trainable_params": plain + extra,
                "inference_params": plain,
                "added_params": extra,
                "param_overhead": extra / plain,
                "counted_state_bytes": 16 * (plain + extra),
                "measured_state_bytes": 16 * (plain + extra),
                "step_peak_bytes": 1000 + extra,
                "step_peak_kind": "peak_rss_growth",
                "step_note": "",
                "plain_step_peak_bytes": 1000,
            }
        )
    return rows


def test_derived_columns_give_pamal_over_each_method():
    rows = derived(fake_rows("cityscapes", 1000, {"palora": 42, "pamal": 1000, "phn-ls": -10}))
    plain, palora, pamal, phn = rows
    assert palora["pamal_ratio_params"] == pytest.approx(1000 / 42)
    assert palora["pamal_ratio_state"] == pytest.approx(1000 / 42)  # 16 bytes each, same plain state
    assert palora["pamal_ratio_step"] == pytest.approx(1000 / 42)
    assert palora["pamal_ratio_params_rounded"] == pytest.approx(100 / 4.2)
    assert palora["state_added_bytes"] == 16 * 42 and palora["state_overhead"] == pytest.approx(0.042)
    assert pamal["pamal_ratio_params"] == 1.0
    assert math.isnan(phn["pamal_ratio_params"])  # PHN adds fewer parameters than the plain model has
    assert all(math.isnan(plain[f"pamal_ratio_{key}"]) for key in ("params", "state", "step"))


def test_the_report_names_the_paper_range_and_merges_identical_datasets():
    rows = derived(fake_rows("cityscapes", 1000, {"palora": 42, "pamal": 1000, "phn-ls": 900}))
    rows += derived(fake_rows("multimnist", 100, {"palora": 12, "pamal": 100, "phn-ls": 9000}))
    rows += derived(fake_rows("multimnist-mini", 100, {"palora": 12, "pamal": 100, "phn-ls": 9000}))
    table = pd.DataFrame(rows)
    assert identical_groups(table) == {"multimnist": ["multimnist", "multimnist-mini"], "cityscapes": ["cityscapes"]}
    text = markdown(table, "python -m bench.benchmarks.memory_claim --out results/", 60.0, 4 * 2**30)
    assert "| cityscapes | segnet (1,000) |" in text and "23.8–31.7×" in text and "**23.81×**" in text
    assert "multimnist, multimnist-mini" in text


def test_every_dataset_with_a_preset_is_measured():
    names = preset_datasets()
    assert {"multimnist", "cityscapes", "nyuv2", "celeba", "census", "sarcos", "utkface"} <= set(names)
