"""`python -m benchmarks [scenario ...] [--quick] [--out PATH/RESULTS.md | --save NAME]`

Runs the chosen scenarios (all by default) in a fixed order, prints a table per scenario and
writes RESULTS.md with plots beside it. `--save NAME` keeps the results in the repository, in
benchmarks/results/<YYYY-MM-DD>-NAME/. `--quick` shrinks every scenario to a smoke test and,
unless --out or --save is given, writes to a temporary folder so quick numbers never land in the
repo; a full run without either goes to benchmarks/results/<YYYY-MM-DD>-<HHMM>-run/.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from benchmarks.machine import REPO_ROOT, machine_info
from benchmarks.paths import SAVED_ROOT, saved_results_path
from benchmarks.plan import FULL, QUICK
from benchmarks.quality.request_set import SEED_BASE
from benchmarks.registry import SCENARIOS
from benchmarks.runner import SCENARIO_LIMIT_S, results_path, run_scenarios


def _save_name(name: str) -> str:
    """--save's argument: one folder name (checked here so a bad one fails before any run)."""
    try:
        saved_results_path(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"any of {', '.join(SCENARIOS)} (default: all, always run in that order)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        default=None,
        help="RESULTS.md path; plots go to its folder's plots/ (default: "
        "benchmarks/results/<date>-<HHMM>-run/, or a temporary folder with --quick)",
    )
    where.add_argument(
        "--save",
        type=_save_name,
        default=None,
        metavar="NAME",
        help=f"write RESULTS.md and plots/ to {SAVED_ROOT.relative_to(REPO_ROOT)}/"
        "<YYYY-MM-DD>-NAME/ (today on this machine's clock); refused if that RESULTS.md exists",
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
        default=SEED_BASE,
        metavar="N",
        help="seed of the quality scenario's first post (the i-th uses N + 1000 x i); another "
        f"value scores the same requests on other samples (default {SEED_BASE})",
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
    parser.add_argument(
        "--peers-rounds",
        type=int,
        default=None,
        metavar="N",
        help="rounds of the peers scenario (default: the plan's); fewer for a first look",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    # A saved run is a record: never overwrite one (a second run the same day needs a new name).
    if args.save is not None and saved_results_path(args.save).exists():
        parser.error(f"{saved_results_path(args.save)} exists; choose another --save NAME")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    selected = [name for name in SCENARIOS if not args.scenarios or name in args.scenarios]
    plan = QUICK if args.quick else FULL
    if args.graph_levels:
        plan = dataclasses.replace(plan, graph_levels=tuple(args.graph_levels))
    if args.graph_duration:
        plan = dataclasses.replace(plan, graph_duration_s=args.graph_duration)
    if args.peers_rounds:
        plan = dataclasses.replace(plan, peers_rounds=args.peers_rounds)
    limit = SCENARIO_LIMIT_S["quick" if args.quick else "full"]
    out = results_path(args.out, args.save, quick=args.quick)
    machine = machine_info(argv)
    if args.quick:
        machine["mode"] = "--quick (smoke-test sizes; not for comparison)"
    failures = run_scenarios(
        selected,
        plan,
        out,
        machine,
        limit_s=limit,
        baseline_threads=args.baseline_threads,
        quality_seed_base=args.quality_seed_base,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
