"""What a result was measured on: machine, software versions, commit, command line."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_counts() -> str:
    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    return f"{usable} usable of {logical} logical" if usable != logical else f"{logical} logical"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def git_commit(root: Path = REPO_ROOT) -> str:
    """Short HEAD, plus "+dirty" when tracked or untracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_line(argv: list[str] | None = None, module: str = "benchmarks") -> str:
    argv = sys.argv[1:] if argv is None else argv
    python = sys.executable
    try:
        relative = os.path.relpath(python)
        if not relative.startswith(".."):
            python = relative
    except ValueError:
        pass
    return shlex.join([python, "-m", module, *argv])


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def gpu_model() -> str:
    """The first GPU torch sees, or "none"."""
    try:
        import torch
    except ImportError:
        return "none (no torch)"
    if not torch.cuda.is_available():
        return "none"
    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 1024**3:.0f} GiB, CUDA {torch.version.cuda}"


def machine_info(argv: list[str] | None = None, module: str = "benchmarks") -> dict[str, str]:
    return {
        "command": f"`{command_line(argv, module)}`",
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "git commit": git_commit(),
        "machine": f"{cpu_model()}, {cpu_counts()} CPUs, {memory_total()} memory, "
        f"{platform.system()} {platform.release()}",
        "gpu": gpu_model(),
        "load average at start (1/5/15 min)": load_average(),
        "versions": f"python {platform.python_version()}, torch {version('torch')}, "
        f"ray {version('ray')}, transformers {version('transformers')}",
    }
