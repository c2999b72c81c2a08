"""GPU checks: skipped without CUDA (see conftest.py)."""

from pathlib import Path

import pytest
import torch

from bench.core.registry import METHODS
from bench.train.config import resolve
from bench.train.runner import run_experiment
from tests.support import tiny_settings

TINY = tiny_settings(epochs=1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", METHODS.names())
def test_tiny_run_on_cuda_matches_cpu(name, tmp_path: Path, data_root: Path):
    cfg = resolve(name, "multimnist-mini", assignments=TINY)
    gpu = run_experiment(cfg, tmp_path / "gpu", data_root, "cuda", show_progress=False).summary
    cpu = run_experiment(cfg, tmp_path / "cpu", data_root, "cpu", show_progress=False).summary
    assert gpu["device"].startswith("cuda") and gpu["peak_memory_bytes"]["kind"] == "cuda_max_memory_allocated"
    assert gpu["peak_memory_bytes"]["train"] > 0
    # same seed, same data order and rays: fronts agree up to floating-point differences
    for a, b in zip(gpu["front"], cpu["front"], strict=True):
        for task in a["metrics"]:
            assert a["metrics"][task]["loss"] == pytest.approx(b["metrics"][task]["loss"], rel=0.05)
    assert torch.cuda.is_available()
