"""The type check beside ruff's lint (tests/test_style.py): mypy over bench/ and methods/ at zero errors."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # about 25 s on 2 cores with a cold cache; about 1 s once .mypy_cache holds the results
@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (it is in the test extras: pip install -e '.[test]')",
)
def test_mypy_clean():
    """mypy from this interpreter's environment with pyproject.toml's [tool.mypy] settings (files:
    bench and methods), incremental through the repository's .mypy_cache."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
