"""bench.benchmarks.performance renders the profiler's rows into results/performance.md (no time is asserted)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from bench.benchmarks.performance import render
from bench.benchmarks.profile import profile
from bench.core.env import machine


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


@pytest.mark.slow
def test_quick_gpu_benchmark_runs_every_section_on_cpu(tmp_path: Path, data_root: Path, monkeypatch):
    """``--quick`` end to end on CPU with tiny cases: every section measured, nothing reported missing."""
    from bench.benchmarks import performance_quick as quick
    from bench.benchmarks.performance import main

    monkeypatch.setattr(quick, "BACKBONE_CASES", (("MultiLeNet", "multimnist-mini", 32, ("data.train_limit=128",), 0),))
    monkeypatch.setattr(quick, "COMPILED", ())
    monkeypatch.setattr(quick, "VMAP_METHODS", ("palora",))
    monkeypatch.setattr(quick, "PACK_SETTINGS", {"train.max_steps": 1, "data.train_limit": 64, "data.eval_limit": 32})
    monkeypatch.setattr(quick.METHODS, "names", lambda: ["palora", "mean"])
    monkeypatch.setenv("PFLBENCH_DATA", str(data_root))
    out = tmp_path / "out"
    argv = ["--quick", "--device", "cpu", "--out", str(out), "--steps", "2", "--runs-per-gpu", "2", "--budget-s", "300"]
    assert main(argv) == 0
    text = (out / "performance-gpu.md").read_text()
    assert "## Not measured" not in text, text
    assert "| MultiLeNet | float32 | 32 |" in text and "| MultiLeNet | bf16 autocast | 32 |" in text
    assert "speed-up of the ensemble" in text and "| palora | 2 |" in text
    assert "| 1 | 2 of 2 |" in text and "| 2 | 2 of 2 |" in text
