"""`python -m benchmarks.prompt_path [--before REV] [--repeats N]`

The per-request CPU work that hardening added to the serving path, against what it replaced, in
one run: turning a job into prompt tokens (`prompt_token_ids`: the template rendered around
placeholders, user text tokenized with special tokens split) against tokenizing the rendered
template as one string (the code before); and compiling a post (`PostCompiler.compile`, with the
injection check) against the Compiler of commit REV (loaded from git into a module of its own).
Inputs: the quality set's 24 requests, their three parts, and model-like raw text per part.
Medians of `--repeats` passes; milliseconds per job or per post.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.machine import REPO_ROOT, machine_info
from benchmarks.paths import saved_results_path
from benchmarks.report import ScenarioReport, Table, render_table, write_results

DEFAULT_OUT = saved_results_path("prompt-path")  # today's run
RAW = {
    "title": "Title: Why code review makes teams faster",
    "content": (
        "Sure! Here is a LinkedIn post:\n\nCode review is where a team learns. When we began "
        "reviewing every change within a day, fewer bugs reached production and new hires "
        "picked up the codebase faster.\n\nSmall pull requests made the difference. What does "
        "your team do to keep reviews quick?"
    ),
    "hashtags": "#CodeReview #Engineering #Teamwork #Quality #DevOps",
}


def old_compiler(rev: str) -> Any:
    """deployments/post/compiler.py as it was at `rev`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:deployments/post/compiler.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "compiler_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("compiler_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_call_ms(calls: list[Callable[[], Any]], repeats: int) -> float:
    """Median over `repeats` passes of the mean time of one call, in ms."""
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for call in calls:
            call()
        passes.append((time.perf_counter() - started) * 1000 / len(calls))
    return statistics.median(passes)


def run(before: str, repeats: int) -> ScenarioReport:
    from transformers import AutoTokenizer

    from benchmarks.quality.request_set import quality_requests
    from deployments.engine.model_loader import resolve_model_source
    from deployments.engine.prompt_tokens import prompt_token_ids
    from deployments.post.compiler import PostCompiler
    from deployments.post.prompts import build_job
    from deployments.schemas import PARTS
    from deployments.settings import GenerationSettings, ModelSettings

    source = resolve_model_source(ModelSettings())
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    requests = quality_requests()
    generation = GenerationSettings()
    jobs = [
        build_job(part, r, r.seed or 0, generation)  # type: ignore[arg-type]
        for r in requests
        for part in PARTS
    ]

    def joint(job: Any) -> list[int]:
        text = tokenizer.apply_chat_template(
            job.messages, add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, truncation=True, max_length=512, add_special_tokens=False)[
            "input_ids"
        ]

    def split(job: Any) -> list[int]:
        return prompt_token_ids(tokenizer, job.messages, job.user_text, 512)

    same = sum(joint(job) == split(job) for job in jobs)
    tokenize_before = per_call_ms([lambda j=j: joint(j) for j in jobs], repeats)
    tokenize_after = per_call_ms([lambda j=j: split(j) for j in jobs], repeats)

    compiler_after = PostCompiler("bench")
    compiler_before = old_compiler(before).PostCompiler("bench")
    raw = (RAW["title"], RAW["content"], RAW["hashtags"])
    compile_before = per_call_ms(
        [lambda r=r: compiler_before.compile(r, *raw) for r in requests], repeats
    )
    compile_after = per_call_ms(
        [lambda r=r: compiler_after.compile(r, *raw) for r in requests], repeats
    )
    rows = [
        [
            "prompt tokens per job",
            round(tokenize_before, 3),
            round(tokenize_after, 3),
            round(tokenize_after / tokenize_before, 2),
        ],
        [
            "compile per post",
            round(compile_before, 3),
            round(compile_after, 3),
            round(compile_after / compile_before, 2),
        ],
    ]
    return ScenarioReport(
        name="prompt-path",
        tables=[
            Table(
                title="prompt path: before and after hardening",
                description=f"ms per call, median of {repeats} passes over {len(jobs)} jobs "
                f"({len(requests)} posts); before: one-string tokenization and the Compiler of "
                f"{before}. {same} of {len(jobs)} jobs give the same tokens both ways.",
                headers=["work", "before ms", "after ms", "after / before"],
                rows=rows,
            )
        ],
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prompt_path", description=__doc__)
    parser.add_argument("--before", default="831290c", help="the commit whose Compiler is 'before'")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    machine = machine_info(argv, module="benchmarks.prompt_path")
    report = run(args.before, args.repeats)
    print("\n\n".join(map(render_table, report.tables)))
    print("wrote", ", ".join(map(str, write_results(args.out, machine, [report]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
