"""`python -m benchmarks [scenario ...] [--quick] [--out benchmarks/RESULTS.md]`

Runs the chosen scenarios (all by default) in a fixed order, prints a table per scenario and
writes RESULTS.md with plots beside it. `--quick` shrinks every scenario to a smoke test and,
unless --out is given, writes to a temporary folder so quick numbers never land in the repo.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from tqdm import tqdm

from benchmarks import quality
from benchmarks.apps import ServeApps
from benchmarks.machine import REPO_ROOT, machine_info
from benchmarks.report import ScenarioReport, Table, render_table, write_results
from benchmarks.scenarios import FULL, QUICK, SCENARIOS, STEPS, Context
from benchmarks.tuning import SETTINGS_SCENARIOS, SETTINGS_STEPS

ALL_SCENARIOS = {**SCENARIOS, **SETTINGS_SCENARIOS}
ALL_STEPS = {**STEPS, **SETTINGS_STEPS}

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "RESULTS.md"
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"any of {', '.join(ALL_SCENARIOS)} (default: all, always run in that order)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"RESULTS.md path; plots go to its folder's plots/ (default: {DEFAULT_OUT}, or a "
        "temporary folder with --quick)",
    )
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads for the in-process baseline (default: torch's, one per core)",
    )
    parser.add_argument(
        "--quality-seed-base",
        type=int,
        default=quality.SEED_BASE,
        metavar="N",
        help="seed of the quality scenario's first post (the i-th uses N + 1000 x i); another "
        f"value scores the same requests on other samples (default {quality.SEED_BASE})",
    )
    parser.add_argument(
        "--graph-levels",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="client counts of the graph scenario (default: the plan's); e.g. 1 32 to compare "
        "two versions of the service at those levels in one sitting",
    )
    parser.add_argument(
        "--graph-duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds each graph level sends for (default: the plan's); longer is steadier",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(ALL_SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(ALL_SCENARIOS)}")
    return args


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    selected = [name for name in ALL_SCENARIOS if not args.scenarios or name in args.scenarios]
    plan = QUICK if args.quick else FULL
    if args.graph_levels:
        plan = dataclasses.replace(plan, graph_levels=tuple(args.graph_levels))
    if args.graph_duration:
        plan = dataclasses.replace(plan, graph_duration_s=args.graph_duration)
    limit = SCENARIO_LIMIT_S["quick" if args.quick else "full"]
    out: Path = args.out or (
        Path(tempfile.mkdtemp(prefix="linkedin-posts-bench-")) / "RESULTS.md"
        if args.quick
        else DEFAULT_OUT
    )
    machine = machine_info(argv)
    if args.quick:
        machine["mode"] = "--quick (smoke-test sizes; not for comparison)"
    workdir = Path(tempfile.mkdtemp(prefix="linkedin-posts-bench-work-"))
    apps = ServeApps()
    reports: list[ScenarioReport] = []
    failures = 0
    total = sum(ALL_STEPS[name](plan) for name in selected)
    with tqdm(total=total, unit="step", dynamic_ncols=True) as bar:
        ctx = Context(
            plan=plan,
            apps=apps,
            workdir=workdir,
            seed_base=random.SystemRandom().randrange(2**40),
            on_step=bar.set_description_str,
            on_done=lambda: bar.update(1),
            baseline_threads=args.baseline_threads,
            quality_seed_base=args.quality_seed_base,
            results_dir=out.parent,
        )
        try:
            for name in selected:
                try:
                    with time_limit(limit):
                        report = ALL_SCENARIOS[name](ctx)
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
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
