"""The code stays ruff-clean and mypy-clean (rules and settings in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["monitor", "storage", "tests", "bench", "tools"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["check", "format"])
def test_ruff(mode: str) -> None:
    args = ["check", *PATHS] if mode == "check" else ["format", "--check", *PATHS]
    res = _ruff(*args)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_mypy() -> None:
    """The daemon and storage type-check clean (settings in pyproject.toml, [tool.mypy])."""
    pytest.importorskip("mypy")
    res = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
