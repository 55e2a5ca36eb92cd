"""Runs the chosen scenarios in the registry's order, each under a time limit, and writes
RESULTS.md with plots beside it. Where results go (`--out`, `--save`, the defaults) is decided
here and nowhere else: scenarios only ever write beside `Context.results_dir`."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from tqdm import tqdm

from benchmarks.apps import ServeApps
from benchmarks.context import Context
from benchmarks.paths import saved_results_path
from benchmarks.plan import Plan
from benchmarks.quality.request_set import SEED_BASE
from benchmarks.registry import SCENARIOS
from benchmarks.report import ScenarioReport, Table, render_table, write_results

SCENARIO_LIMIT_S = {"full": 3600, "quick": 600}  # a scenario past this is abandoned


class ScenarioTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise ScenarioTimeout in the main thread after `seconds` (SIGALRM; Unix only)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ScenarioTimeout(f"scenario exceeded its {seconds} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def failed_report(name: str, error: BaseException) -> ScenarioReport:
    return ScenarioReport(
        name=name,
        tables=[
            Table(
                title=f"{name}: failed",
                description=f"The scenario stopped with `{type(error).__name__}: {error}`.",
                headers=["error"],
                rows=[[type(error).__name__]],
            )
        ],
    )


def results_path(out: Path | None, save: str | None, *, quick: bool) -> Path:
    """Where RESULTS.md goes: `out` as given; else `save`'s dated folder under benchmarks/results/;
    else a fresh temporary folder with --quick (quick numbers never land in the repo), or a
    folder of its own under benchmarks/results/ (<date>-<HHMM>-run)."""
    if out is not None:
        return out
    if save is not None:
        return saved_results_path(save)
    if quick:
        return Path(tempfile.mkdtemp(prefix="linkedin-posts-bench-")) / "RESULTS.md"
    return saved_results_path(f"{dt.datetime.now():%H%M}-run")


def run_scenarios(
    names: Sequence[str],
    plan: Plan,
    out: Path,
    machine: dict[str, str],
    *,
    limit_s: int,
    baseline_threads: int | None = None,
    quality_seed_base: int = SEED_BASE,
) -> int:
    """Run `names` (registry order) one after another on one Ray, print each report, write
    RESULTS.md to `out` (plots beside it) and return how many scenarios failed. A scenario that
    raises or passes `limit_s` is reported as failed and the run goes on."""
    workdir = Path(tempfile.mkdtemp(prefix="linkedin-posts-bench-work-"))
    apps = ServeApps()
    reports: list[ScenarioReport] = []
    failures = 0
    total = sum(SCENARIOS[name].steps(plan) for name in names)
    with tqdm(total=total, unit="step", dynamic_ncols=True) as bar:
        ctx = Context(
            plan=plan,
            apps=apps,
            workdir=workdir,
            seed_base=random.SystemRandom().randrange(2**40),
            on_step=bar.set_description_str,
            on_done=lambda: bar.update(1),
            baseline_threads=baseline_threads,
            quality_seed_base=quality_seed_base,
            results_dir=out.parent,
        )
        try:
            for name in names:
                try:
                    with time_limit(limit_s):
                        report = SCENARIOS[name].run(ctx)
                    if name == "baseline":
                        ctx.baseline = report
                except Exception as error:
                    failures += 1
                    tqdm.write(f"scenario {name} failed:\n{traceback.format_exc()}", sys.stderr)
                    report = failed_report(name, error)
                reports.append(report)
                tqdm.write(f"\n== {name} ==\n\n" + "\n\n".join(map(render_table, report.tables)))
        finally:
            bar.set_description_str("shutting down")
            apps.close()
            shutil.rmtree(workdir, ignore_errors=True)
    written = write_results(out, machine, reports)
    print("\nwrote " + ", ".join(str(path) for path in written))
    return failures
