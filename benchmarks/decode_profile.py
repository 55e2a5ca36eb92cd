"""Where a decode step's time goes: one model replica's engine (TextGenerator + DecodeBatch),
without Ray, at the batch sizes asked, under the settings asked.

    python -m benchmarks.decode_profile --rows 1 20 --threads 1 2 --out DIR
    python -m benchmarks.decode_profile --set model.quantization=int8_weights ...

For each (threads, rows): the median milliseconds of a decode step (rows of real content prompts
held to a fixed length), and torch.profiler's operators by self CPU time over a few steps (with
their CUDA time on a GPU). `--generate-baseline` times transformers' own `generate` on the same
prompts beside it (a fixed batch, greedy, prefill included). Writes PROFILE.md (with the machine,
command, commit and date) into --out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.machine import machine_info


def _settings(overrides: list[str]) -> Any:
    from deployments.settings import AppSettings

    data: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    return AppSettings.load(data)


def _jobs(rows: int, tokens: int) -> list[Any]:
    from benchmarks.workload import request_body
    from deployments.post.prompts import post_jobs
    from deployments.schemas import PostRequest
    from deployments.settings import AppSettings

    generation = AppSettings.load().generation
    jobs = []
    for i in range(rows):
        request = PostRequest(**request_body(i, 1000 + i, length="short", use_cache=False))
        job = post_jobs(request, 1000 + i, generation, all_candidates=False)["content"][0]
        jobs.append(job.model_copy(update={"max_new_tokens": tokens, "min_new_tokens": tokens}))
    return jobs


def measure(generator: Any, rows: int, steps: int, profile_steps: int) -> tuple[float, str]:
    """Median ms per decode step at `rows` rows, and the profiler's table over a few steps."""
    from deployments.engine.generator import DecodeBatch, PendingRow

    batch = DecodeBatch(generator)
    total = steps + profile_steps + 2
    batch.admit([PendingRow(job=job, deliver=lambda _: None) for job in _jobs(rows, total)])
    batch.step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        batch.step()
        times.append((time.perf_counter() - start) * 1000)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if generator.loaded.device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(profile_steps):
            batch.step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
    return statistics.median(times), table


@torch.inference_mode()
def generate_baseline(generator: Any, rows: int, steps: int) -> float:
    """transformers' `generate` on the same prompts, left-padded into one fixed batch, greedy,
    `steps` new tokens per row: milliseconds per new token of a row, its prefill included."""
    loaded = generator.loaded
    prompts = [generator.tokenize(job) for job in _jobs(rows, steps)]
    width = max(len(p) for p in prompts)
    pad = loaded.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=loaded.device)
    mask = torch.tensor(
        [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=loaded.device
    )
    kwargs = {"max_new_tokens": steps, "min_new_tokens": steps, "do_sample": False}
    loaded.model.generate(ids, attention_mask=mask, pad_token_id=pad, **kwargs)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        loaded.model.generate(ids, attention_mask=mask, pad_token_id=pad, **kwargs)
        times.append((time.perf_counter() - start) * 1000 / steps)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="section.name=value")
    parser.add_argument("--generate-baseline", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from deployments.engine.generator import TextGenerator
    from deployments.engine.model_loader import load_model

    settings = _settings(args.set)
    loaded = load_model(settings.model)
    generator = TextGenerator(loaded, settings.generation, settings.model)
    lines = [
        "# Decode step profile",
        "",
        *(
            f"- {key}: {value}"
            for key, value in machine_info(argv, module="benchmarks.decode_profile").items()
        ),
        f"- model: {loaded.model_id} on {loaded.device} as {loaded.dtype}, "
        f"quantization {loaded.quantization}",
        "",
        "| torch threads | rows | ms per step (median) | ms per row-token | "
        "transformers generate: ms per step |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    tables = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for rows in args.rows:
            ms, table = measure(generator, rows, args.steps, args.profile_steps)
            baseline = "-"
            if args.generate_baseline:
                baseline = f"{generate_baseline(generator, rows, args.steps):.1f}"
            lines.append(f"| {threads} | {rows} | {ms:.1f} | {ms / rows:.2f} | {baseline} |")
            print(lines[-1], flush=True)
            tables += ["", f"## {threads} threads, {rows} rows", "", "```", table, "```"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PROFILE.md").write_text("\n".join(lines + tables) + "\n")


if __name__ == "__main__":
    main()
