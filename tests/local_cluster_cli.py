"""`deploy/local_cluster.py` run as `make cluster` runs it, for the tests that need the real
three-node cluster (tests/test_cluster.py, tests/test_observability.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "local_cluster.py"


def cluster(*args: str, timeout: float = 900) -> str:
    """`local_cluster.py ARGS`; its output, or the test fails with it."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
