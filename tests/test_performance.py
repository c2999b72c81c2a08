"""bench.performance renders the profiler's rows into results/performance.md (no time is asserted)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.performance import machine, render
from bench.profile import profile


def test_render_quotes_the_median_ratio_and_overheads(data_root: Path):
    rows = [
        profile(
            name,
            "multimnist-mini",
            torch.device("cpu"),
            2,
            32,
            ["data.train_limit=128", "data.eval_limit=32"],
            data_root,
            True,
        )
        for name in ("palora", "pamal")
    ]
    args = argparse.Namespace(out=Path("results"), device="cpu", steps=2, invocations=3, threads=2)
    text = render(rows, [1.02, 0.98, 1.04], [1.1, 1.0, 1.2], args, machine(torch.device("cpu")))
    assert "| 1.020, 0.980, 1.040 | **1.020** |" in text and "| 1.100, 1.000, 1.200 | 1.100 |" in text
    assert "| palora | 0.125 | 8 |" in text  # PaLoRA rank 1 adds 12.5%, PaMaL 100%: 8x less
    assert rows[0]["vmap_speedup"] > 0 and rows[0]["ray_batching"] == "sequential"
    assert "logical cores" in text and "--invocations 3" in text
