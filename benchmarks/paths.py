"""Where results are kept: benchmarks/results/<YYYY-MM-DD>-<name>/, one folder per run, written
by the harness and the standalone benchmarks only."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from benchmarks.machine import REPO_ROOT

SAVED_ROOT = REPO_ROOT / "benchmarks" / "results"  # --save NAME: SAVED_ROOT/<date>-NAME/
# One folder name, never a path: --save must not write outside SAVED_ROOT.
SAVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def saved_results_path(name: str, today: dt.date | None = None) -> Path:
    """benchmarks/results/<YYYY-MM-DD>-<name>/RESULTS.md, dated by this machine's clock."""
    if not SAVE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a folder name: letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, at most 80 characters"
        )
    day = today or dt.date.today()
    return SAVED_ROOT / f"{day.isoformat()}-{name}" / "RESULTS.md"
