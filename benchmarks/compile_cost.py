"""compile_cost: milliseconds per post that `PostCompiler.compile` takes over a saved corpus.

    python -m benchmarks.compile_cost CORPUS.jsonl [--first-candidate-only]

Run it in two trees on one corpus (PYTHONPATH=<other tree>) to compare Compilers; a Compiler
older than best of n takes one candidate per part, so compare those with --first-candidate-only.
Median of 7 passes over every post.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from deployments.post.compiler import PostCompiler
from deployments.schemas import PostRequest

PASSES = 7


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_cost", description=__doc__)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--first-candidate-only", action="store_true")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.corpus.read_text().splitlines() if line]
    jobs = []
    for record in records:
        raw = record["raw"]
        titles, contents = raw["title"], raw["content"]
        if args.first_candidate_only:
            titles, contents = titles[0], contents[0]
        tags = raw["hashtags"][0] if raw["hashtags"] else ""
        jobs.append((PostRequest.model_validate(record["request"]), titles, contents, tags))
    compiler = PostCompiler("compile-cost")
    passes = []
    for _ in range(PASSES):
        started = time.perf_counter()
        for job in jobs:
            compiler.compile(*job)
        passes.append((time.perf_counter() - started) * 1000 / len(jobs))
    median = statistics.median(passes)
    print(f"{median:.3f} ms per post (median of {PASSES} passes, {len(jobs)} posts)")


if __name__ == "__main__":
    main()
