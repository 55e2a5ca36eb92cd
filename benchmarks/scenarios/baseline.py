"""baseline: the naive way in one process, no Ray: title, content, hashtags one after another,
one single-row `generate` each; every later posts/s ratio divides by its posts/s."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.context import Context
from benchmarks.load import percentile
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import LENGTH
from benchmarks.workload import request_body


@dataclass
class BaselineRun:
    """Posts written one after another by one way of calling the model."""

    seconds: list[float]
    new_tokens: int
    texts: list[str]
    wall_s: float

    @property
    def posts_per_s(self) -> float:
        return len(self.seconds) / self.wall_s if self.wall_s > 0 else math.nan


def plain_generate(loaded: Any, job: Any, generation: Any) -> tuple[str, int]:
    """One part the naive way: the chat template, then `model.generate` with the service's
    sampling settings (seeded through torch's global generator)."""
    import torch

    from deployments.engine.generator import eos_token_ids
    from deployments.engine.sampling import generate_penalty_kwargs

    tokenizer = loaded.tokenizer
    inputs = tokenizer.apply_chat_template(
        job.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_length = inputs["input_ids"].shape[1]
    torch.manual_seed(job.seed)
    output = loaded.model.generate(
        **inputs,
        do_sample=generation.temperature > 0,
        temperature=generation.temperature or None,
        top_p=generation.top_p,
        top_k=generation.top_k,
        **generate_penalty_kwargs(generation, prompt_length),
        no_repeat_ngram_size=generation.no_repeat_ngram_size,
        min_new_tokens=job.min_new_tokens,
        max_new_tokens=job.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
    )
    stops = set(eos_token_ids(loaded))
    produced = [t for t in output[0, prompt_length:].tolist() if t not in stops]  # not text
    return tokenizer.decode(produced, skip_special_tokens=True), len(produced)


def baseline(ctx: Context) -> ScenarioReport:
    """Title, content, hashtags one after another, one single-row `generate` each, then compile:
    what a script calling the model directly would do. A second row writes the same posts
    through this service's decode loop, one request at a time (no batching)."""
    import torch
    from transformers.utils import logging as transformers_logging

    from deployments.engine import GenerationEngine, build_engine
    from deployments.engine.model_loader import load_model
    from deployments.post.compiler import PostCompiler
    from deployments.post.prompts import build_job
    from deployments.schemas import PARTS, GenerationResult, PostRequest
    from deployments.settings import AppSettings

    transformers_logging.disable_progress_bar()
    if ctx.baseline_threads:
        torch.set_num_threads(ctx.baseline_threads)
    plan = ctx.plan
    with ctx.step("baseline: load model"):
        settings = AppSettings.load()
        loaded = load_model(settings.model)
        engine: GenerationEngine = build_engine(
            settings.model, settings.generation, settings.batching
        )
        compiler = PostCompiler(loaded.model_id)
        warm = build_job(
            "title", PostRequest(**request_body(0, 0, length=LENGTH)), 0, settings.generation
        )
        plain_generate(loaded, warm, settings.generation)
        engine.submit([warm])[0].result()
        ctx.tokenizer = loaded.tokenizer

    def engine_part(job: Any) -> tuple[str, int]:
        result: GenerationResult = engine.submit([job])[0].result()
        return result.text, result.new_tokens

    def write_posts(label: str, part: Any, seeds: list[int]) -> BaselineRun:
        run = BaselineRun([], 0, [], 0.0)
        started = time.perf_counter()
        deadline = started + plan.baseline_budget_s
        for index, seed in enumerate(seeds):
            if time.perf_counter() > deadline:
                break
            with ctx.step(f"baseline ({label}): post {index + 1}/{len(seeds)}"):
                request = PostRequest(**request_body(index, seed, length=LENGTH))
                post_started = time.perf_counter()
                texts = {}
                for name in PARTS:
                    text, count = part(build_job(name, request, seed, settings.generation))
                    texts[name] = text
                    run.new_tokens += count
                post = compiler.compile(
                    request, texts["title"], texts["content"], texts["hashtags"]
                )
                run.seconds.append(time.perf_counter() - post_started)
                run.texts.append(post.text)
        run.wall_s = time.perf_counter() - started
        return run

    seeds = [ctx.next_seed() for _ in range(plan.baseline_posts)]
    runs = {
        "plain `generate`": write_posts(
            "generate", lambda job: plain_generate(loaded, job, settings.generation), seeds
        ),
        "this service's decode loop, one at a time": write_posts("decode loop", engine_part, seeds),
    }
    engine.close()
    threads = torch.get_num_threads()
    naive = runs["plain `generate`"]
    posts_per_s = naive.posts_per_s
    estimated = ctx.count_tokens(naive.texts)

    table = Table(
        title="Baseline: one process, no Ray, one part at a time",
        description=(
            f"The same `{LENGTH}` posts (topics, tones, seeds) written in sequence, each as three "
            "single-row calls (title, content, hashtags) and `PostCompiler.compile`, with the "
            "service's default model and sampling settings: first with transformers' plain "
            "`model.generate` (the naive way: every later posts/s ratio divides by its posts/s), "
            "then with this service's own decode loop, still one request at a time."
        ),
        headers=[
            "calls",
            "posts",
            "wall s",
            "posts/s",
            "vs plain generate",
            "s/post p50",
            "s/post p95",
            "new tokens/s (counted)",
            "post tokens/s (est.)",
            "torch threads",
        ],
        rows=[
            [
                label,
                len(run.seconds),
                run.wall_s,
                run.posts_per_s,
                fmt_ratio(ratio(run.posts_per_s, posts_per_s)),
                statistics.median(run.seconds) if run.seconds else math.nan,
                percentile(run.seconds, 95),
                run.new_tokens / run.wall_s if run.wall_s > 0 else math.nan,
                ctx.count_tokens(run.texts) / run.wall_s if run.wall_s > 0 else math.nan,
                threads,
            ]
            for label, run in runs.items()
        ],
        notes=[
            "new tokens/s counts the tokens the model generated; post tokens/s re-tokenizes the "
            "compiled post text (what the graph scenario can measure over HTTP).",
            "The two rows sample differently (torch's global generator against one seeded "
            "generator per row), so their posts and lengths differ somewhat.",
            "torch threads: the naive default is one per core (set with --baseline-threads). "
            "With more than one thread, other load on the machine slows this baseline far more "
            "than the graph (Ray gives each model replica, at 0.5 CPU, one thread), so run on a "
            "quiet machine.",
        ],
    )
    return ScenarioReport(
        name="baseline",
        tables=[table],
        throughput_unit="posts/s",
        headline={"posts_per_s": posts_per_s, "post_tokens_per_s": estimated / naive.wall_s},
    )
