"""One function per scenario; each bounds its own time and request count and returns a report.

baseline  the naive way in one process, no Ray: title, content, hashtags one after another
graph     the graph over HTTP, cache off, at rising concurrency; posts/s against the baseline
batch     POST /v1/posts/batch with N requests against N concurrent POST /v1/posts
cache     cache-hit path against a constant Serve endpoint (the ceiling), plus a Zipf workload
handle    the same loads through the Python handle from this driver against HTTP
quality   post contract and topical relevance of 24 fixed posts from the real model (quality.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import quality
from benchmarks.apps import CONSTANT_ROUTE, GRAPH_APP, ServeApps
from benchmarks.load import (
    LoadRun,
    Outcome,
    Send,
    Stats,
    closed_loop,
    http_client,
    http_post_sender,
    percentile,
    zipf_sample,
)
from benchmarks.report import ScenarioReport, Series, Table, fmt_percent, fmt_ratio, ratio
from benchmarks.workload import request_body, zipf_topics

LENGTH = "short"  # the same post length for the baseline and every generating scenario
GRAPH_TARGET = 6.0  # graph posts/s at 32 clients over the baseline's
CACHE_TARGET = 0.70  # cache-hit throughput over the constant endpoint's
MODEL_DEPLOYMENTS = {"title": "TitleModel", "content": "ContentModel", "hashtags": "HashtagModel"}

# Cache scenarios only measure hits, so their misses (pre-fill, Zipf first sightings) are cheap.
SMALL_GENERATION: dict[str, Any] = {
    "content_max_new_tokens": {"short": 24, "medium": 24, "long": 24},
    "content_min_new_tokens": {"short": 4, "medium": 4, "long": 4},
    "title_max_new_tokens": 8,
    "hashtags_max_new_tokens": 8,
}
# L1 small enough that the Zipf workload's long tail is evicted and read back from L2/L3.
CACHE_L1_ENTRIES = 32


@dataclass(frozen=True)
class Plan:
    """Sizes and time budgets; every load run has a request cap and a hard time limit."""

    baseline_posts: int
    baseline_budget_s: float
    graph_levels: tuple[int, ...]
    graph_duration_s: float
    graph_requests_base: int  # a level sends at most base + 3 x clients requests
    graph_drain_s: float  # in-flight requests get this long after the duration, then cancelled
    batch_requests: int
    batch_rounds: int
    batch_budget_s: float
    cache_levels: tuple[int, ...]
    cache_duration_s: float
    cache_max_requests: int
    prefill_posts: int
    zipf_topics: int
    zipf_s: float
    zipf_requests: int
    zipf_concurrency: int
    zipf_budget_s: float
    handle_levels: tuple[int, ...]
    handle_duration_s: float
    nocache_requests: int
    nocache_concurrency: int
    nocache_budget_s: float


FULL = Plan(
    baseline_posts=16,
    baseline_budget_s=240,
    graph_levels=(1, 8, 32, 64, 128),
    graph_duration_s=60,
    graph_requests_base=20,
    graph_drain_s=600,  # a level ends when its last answer does; this only caps a stall
    batch_requests=16,
    batch_rounds=2,
    batch_budget_s=300,
    cache_levels=(1, 8, 32, 128),
    cache_duration_s=15,
    cache_max_requests=50_000,
    prefill_posts=8,
    zipf_topics=200,
    zipf_s=1.1,
    zipf_requests=400,
    zipf_concurrency=8,
    zipf_budget_s=300,
    handle_levels=(1, 8, 32, 128),
    handle_duration_s=15,
    nocache_requests=24,
    nocache_concurrency=8,
    nocache_budget_s=180,
)

QUICK = Plan(
    baseline_posts=2,
    baseline_budget_s=90,
    graph_levels=(1, 8),
    graph_duration_s=8,
    graph_requests_base=2,
    graph_drain_s=90,
    batch_requests=8,
    batch_rounds=1,
    batch_budget_s=120,
    cache_levels=(1, 8),
    cache_duration_s=2,
    cache_max_requests=5_000,
    prefill_posts=4,
    zipf_topics=200,
    zipf_s=1.1,
    zipf_requests=24,
    zipf_concurrency=4,
    zipf_budget_s=60,
    handle_levels=(1, 8),
    handle_duration_s=2,
    nocache_requests=4,
    nocache_concurrency=4,
    nocache_budget_s=60,
)


@dataclass
class Context:
    plan: Plan
    apps: ServeApps
    workdir: Path  # temporary: the L3 directories of this run
    seed_base: int  # per run, so no key is ever cached from an earlier run (Redis persists)
    on_step: Callable[[str], None] = lambda description: None
    on_done: Callable[[], None] = lambda: None
    baseline: ScenarioReport | None = None
    baseline_threads: int | None = None  # torch threads for the baseline; None: torch's default
    quality_seed_base: int = quality.SEED_BASE  # the quality scenario's seeds: base + 1000 x i
    results_dir: Path | None = None  # where RESULTS.md goes; scenarios may leave files beside it
    tokenizer: Any = None
    _seeds: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))

    def next_seed(self) -> int:
        return self.seed_base + next(self._seeds)

    def prefill_seed(self, index: int) -> int:
        return self.seed_base + index

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        self.on_step(description)
        yield
        self.on_done()

    def count_tokens(self, texts: Sequence[str]) -> int:
        if not texts:
            return 0
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            from deployments.model_loader import resolve_model_source
            from deployments.settings import AppSettings

            source = resolve_model_source(AppSettings.load().model)
            self.tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return sum(len(ids) for ids in encoded)


STEPS: dict[str, Callable[[Plan], int]] = {
    "baseline": lambda p: 1 + 2 * p.baseline_posts,
    "graph": lambda p: 1 + len(p.graph_levels),
    "batch": lambda p: 1 + 2 * p.batch_rounds,
    "cache": lambda p: 2 * (2 + 2 * len(p.cache_levels)) + 1,  # two deployments, then Zipf
    "handle": lambda p: 1 + 2 * len(p.handle_levels) + 2,
    "quality": lambda p: quality.STEP_COUNT,
}


# ---- app settings ------------------------------------------------------------------------------


def _no_rate_limit() -> dict[str, Any]:
    """The benchmarks measure capacity, not the per-client quota: rate limiting off (when this
    version of the service has it)."""
    from deployments.settings import AppSettings

    if "security" in AppSettings.model_fields:
        return {"security": {"rate_limit_enabled": False}}
    return {}


def nocache_args(ctx: Context) -> dict[str, Any]:
    return {
        **_no_rate_limit(),
        "cache": {"enabled": False, "l3_dir": str(ctx.workdir / "l3-nocache")},
    }


def cache_args(ctx: Context) -> dict[str, Any]:
    return {
        **_no_rate_limit(),
        "generation": SMALL_GENERATION,
        "cache": {"l3_dir": str(ctx.workdir / "l3-cache"), "l1_max_entries": CACHE_L1_ENTRIES},
    }


def describe_args(args: dict[str, Any]) -> str:
    """The settings args as a note, without this run's temporary paths."""
    shown = {
        section: {k: v for k, v in values.items() if k != "l3_dir"}
        if isinstance(values, dict)
        else values
        for section, values in args.items()
    }
    return f"Service settings args (over the defaults): `{json.dumps(shown, sort_keys=True)}`."


# ---- load helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    concurrency: int
    duration_s: float
    max_requests: int
    hard_limit_s: float


def run_load(send_factory: Callable[[], Any], load: Load) -> LoadRun:
    """Build the sender inside a fresh event loop (an async context manager yielding a Send)
    and run the closed loop with it."""

    async def main() -> LoadRun:
        async with send_factory() as send:
            return await closed_loop(
                send,
                concurrency=load.concurrency,
                duration_s=load.duration_s,
                max_requests=load.max_requests,
                hard_limit_s=load.hard_limit_s,
            )

    return asyncio.run(main())


def http_target(
    url: str,
    body_for: Callable[[int], dict[str, Any]],
    concurrency: int,
    timeout_s: float,
    parse: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def factory() -> Any:
        async with http_client(concurrency, timeout_s) as client:
            yield http_post_sender(client, url, body_for, parse)

    return factory


def _status_of(exc: BaseException) -> int:
    """The HTTP status an exception from the Ingress would have been answered with."""
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    if isinstance(exc, BackPressureError | DeploymentUnavailableError):
        return 503
    for candidate in (exc, getattr(exc, "cause", None), exc.__cause__):
        status = getattr(candidate, "status", None)
        if isinstance(status, int):
            return status
    return 500


def handle_target(
    body_for: Callable[[int], dict[str, Any]],
    parse: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def factory() -> Any:
        from ray import serve

        handle = serve.get_app_handle(GRAPH_APP)

        async def send(index: int) -> Outcome:
            try:
                post = await handle.generate.remote(body_for(index))
            except Exception as exc:
                return Outcome(_status_of(exc), {"error": type(exc).__name__})
            return Outcome(200, parse(post) if parse else {})

        sender: Send = send
        yield sender

    return factory


def cache_info(post: dict[str, Any]) -> dict[str, Any]:
    cache = post["metadata"]["cache"]
    return {"hit": bool(cache["hit"]), "layer": cache["layer"]}


def post_text(post: dict[str, Any]) -> dict[str, Any]:
    return {"text": post["text"]}


def _ms_to_s(value: float) -> float:
    return value / 1000


def prefill(ctx: Context, url: str) -> list[dict[str, Any]]:
    """Generate a few posts in one batch request and wait until every one is a cache hit (the
    write-back runs in the background). Same seeds for the whole run, so it is idempotent."""
    bodies = [
        request_body(i, ctx.prefill_seed(i), length=LENGTH) for i in range(ctx.plan.prefill_posts)
    ]
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=120, trust_env=False) as client:
        client.post(f"{url}/v1/posts/batch", json={"requests": bodies}).raise_for_status()
        for body in bodies:
            while True:
                response = client.post(f"{url}/v1/posts", json=body)
                response.raise_for_status()
                if response.json()["metadata"]["cache"]["hit"]:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("pre-filled posts did not become cache hits within 120 s")
                time.sleep(0.2)
    return bodies


def generation_load(ctx: Context, url: str, clients: int, *, warm_up: bool = True) -> LoadRun:
    """One warm-up post (unless `warm_up` is false), then `clients` clients in closed loop
    asking for fresh `LENGTH` posts (cache off, a new seed each) for the plan's duration; the
    answers keep their text."""
    plan = ctx.plan
    load = Load(
        concurrency=clients,
        duration_s=plan.graph_duration_s,
        max_requests=plan.graph_requests_base + 3 * clients,
        hard_limit_s=plan.graph_duration_s + plan.graph_drain_s,
    )
    seeds = [ctx.next_seed() for _ in range(load.max_requests + 1)]
    if warm_up:
        with httpx.Client(timeout=300, trust_env=False) as client:
            warm = request_body(0, seeds[0], length=LENGTH, use_cache=False)
            client.post(f"{url}/v1/posts", json=warm).raise_for_status()

    def body_for(i: int) -> dict[str, Any]:
        return request_body(i, seeds[i + 1], length=LENGTH, use_cache=False)

    return run_load(
        http_target(f"{url}/v1/posts", body_for, clients, load.hard_limit_s, post_text), load
    )


# ---- 1. baseline -------------------------------------------------------------------------------


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

    from deployments.generator import eos_token_ids
    from deployments.sampling import generate_penalty_kwargs

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

    from deployments.compiler import PostCompiler
    from deployments.generator import TextGenerator
    from deployments.model_loader import load_model
    from deployments.prompts import build_job
    from deployments.schemas import GenerationResult, PostRequest
    from deployments.settings import AppSettings

    transformers_logging.disable_progress_bar()
    if ctx.baseline_threads:
        torch.set_num_threads(ctx.baseline_threads)
    plan = ctx.plan
    with ctx.step("baseline: load model"):
        settings = AppSettings.load()
        loaded = load_model(settings.model)
        generator = TextGenerator(loaded, settings.generation, settings.model)
        compiler = PostCompiler(loaded.model_id)
        warm = build_job(
            "title", PostRequest(**request_body(0, 0, length=LENGTH)), 0, settings.generation
        )
        plain_generate(loaded, warm, settings.generation)
        generator.generate_batch([warm])
        ctx.tokenizer = loaded.tokenizer

    def engine_part(job: Any) -> tuple[str, int]:
        result = generator.generate_batch([job])[0]
        if not isinstance(result, GenerationResult):
            raise result
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
                for name in ("title", "content", "hashtags"):
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


# ---- 2. graph ----------------------------------------------------------------------------------


def _engine_counts() -> dict[str, tuple[int, int]]:
    """Each model deployment's decode steps and rows decoded so far (one replica each here)."""
    from ray import serve

    counts = {}
    for part, name in MODEL_DEPLOYMENTS.items():
        info = (
            serve.get_deployment_handle(name, app_name=GRAPH_APP).info.remote().result(timeout_s=60)
        )
        counts[part] = (info["steps"], info["row_steps"])
    return counts


def _mean_batches(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Rows per decode step over the steps between two `_engine_counts`."""
    means = {}
    for part in MODEL_DEPLOYMENTS:
        steps = after[part][0] - before[part][0]
        rows = after[part][1] - before[part][1]
        means[part] = rows / steps if steps else math.nan
    return means


def graph(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    args = nocache_args(ctx)
    with ctx.step("graph: start Serve (cache off)"):
        url = ctx.apps.deploy(args)
        warm = request_body(0, ctx.next_seed(), length=LENGTH, use_cache=False)
        with httpx.Client(timeout=300, trust_env=False) as client:
            client.post(f"{url}/v1/posts", json=warm).raise_for_status()

    base = ctx.baseline.headline.get("posts_per_s", math.nan) if ctx.baseline else math.nan
    series = Series("graph, cache off")
    rows: list[list[Any]] = []
    for clients in plan.graph_levels:
        before = _engine_counts()
        with ctx.step(f"graph: {clients} clients"):
            run = generation_load(ctx, url, clients, warm_up=False)
        stats = run.stats()
        tokens = ctx.count_tokens([r.info["text"] for r in run.ok_records()])
        batch = _mean_batches(before, _engine_counts())
        series.add(clients, stats.throughput, stats.p50_ms, stats.p95_ms)
        rows.append(
            [
                clients,
                stats.requests,
                stats.throughput,
                fmt_ratio(ratio(stats.throughput, base)),
                _ms_to_s(stats.p50_ms),
                _ms_to_s(stats.p95_ms),
                _ms_to_s(stats.p99_ms),
                stats.ok,
                stats.errors_5xx,
                stats.rejected,
                stats.reject_p50_ms,
                stats.failed,
                tokens / stats.wall_s,
                batch["title"],
                batch["content"],
                batch["hashtags"],
            ]
        )

    at_32 = next((row for row in rows if row[0] == 32), None)
    notes = [
        "tokens/s is estimated: the compiled post texts of the 2xx answers re-tokenized with the "
        "model's tokenizer, over the level's wall time (the HTTP answer carries no token counts).",
        "mean batch: rows decoding together per decode step in each model deployment over the "
        "level (its engine's counters before and after the level).",
        f"closed loop: each level sends for {plan.graph_duration_s:.0f} s (at most "
        f"{plan.graph_requests_base} + 3 x clients requests), then waits up to "
        f"{plan.graph_drain_s:.0f} s for answers; requests still running then count as failed.",
        describe_args(args),
    ]
    if at_32 is not None and not math.isnan(base):
        achieved = ratio(at_32[2], base)
        verdict = "met" if achieved >= GRAPH_TARGET else "NOT met"
        notes.insert(
            0,
            f"At 32 clients the graph writes {fmt_ratio(achieved)} the baseline's posts/s "
            f"(target ≥ {GRAPH_TARGET:.0f}x): {verdict}.",
        )
    elif math.isnan(base):
        notes.insert(0, "No baseline in this run: run `baseline` with `graph` for the ratios.")
    table = Table(
        title="Graph over HTTP, cache off",
        description=(
            f"POST /v1/posts with `use_cache: false`, `cache.enabled: false` and a distinct seed "
            f"per request, `{LENGTH}` posts like the baseline, N clients in closed loop; "
            "posts/s is compared with the baseline's."
        ),
        headers=[
            "clients",
            "requests",
            "posts/s",
            "vs baseline",
            "p50 s",
            "p95 s",
            "p99 s",
            "2xx",
            "5xx",
            "429/503",
            "rejected p50 ms",
            "failed",
            "tokens/s (est.)",
            "mean batch title",
            "mean batch content",
            "mean batch hashtags",
        ],
        rows=rows,
        notes=notes,
    )
    return ScenarioReport(name="graph", tables=[table], series=[series], throughput_unit="posts/s")


# ---- 3. batch ----------------------------------------------------------------------------------


def batch(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    count = plan.batch_requests
    args = nocache_args(ctx)
    with ctx.step("batch: start Serve (cache off)"):
        url = ctx.apps.deploy(args)
    seeds = [ctx.next_seed() for _ in range(count)]
    bodies = [request_body(i, seeds[i], length=LENGTH, use_cache=False) for i in range(count)]

    def singles() -> tuple[float, int]:
        load = Load(count, plan.batch_budget_s, count, plan.batch_budget_s)
        run = run_load(
            http_target(f"{url}/v1/posts", bodies.__getitem__, count, plan.batch_budget_s), load
        )
        return run.wall_s, run.stats().ok

    def one_batch() -> tuple[float, int]:
        with httpx.Client(timeout=plan.batch_budget_s, trust_env=False) as client:
            started = time.perf_counter()
            response = client.post(f"{url}/v1/posts/batch", json={"requests": bodies})
            wall = time.perf_counter() - started
        ok = len(response.json()["posts"]) if response.status_code == 200 else 0
        return wall, ok

    rows: list[list[Any]] = []
    walls: dict[str, list[float]] = {"singles": [], "batch": []}
    for round_index in range(plan.batch_rounds):
        order = [("singles", singles), ("batch", one_batch)]
        if round_index % 2:
            order.reverse()
        for mode, measure in order:
            with ctx.step(f"batch: round {round_index + 1}, {mode}"):
                wall, ok = measure()
            walls[mode].append(wall)
            label = (
                f"{count} concurrent POST /v1/posts"
                if mode == "singles"
                else (f"1 POST /v1/posts/batch of {count}")
            )
            rows.append([round_index + 1, label, ok, wall, ok / wall if wall > 0 else math.nan])
    singles_s = statistics.median(walls["singles"])
    batch_s = statistics.median(walls["batch"])
    table = Table(
        title=f"One batch request against {count} single requests",
        description=(
            f"The same {count} `{LENGTH}` requests (same seeds, cache off) sent as one "
            f"POST /v1/posts/batch and as {count} concurrent POST /v1/posts, in alternating "
            "order per round; wall time from first send to last answer."
        ),
        headers=["round", "how", "posts ok", "wall s", "posts/s"],
        rows=rows,
        notes=[
            f"Median wall time: singles {singles_s:.2f} s, batch {batch_s:.2f} s; the batch "
            f"takes {fmt_ratio(ratio(batch_s, singles_s))} the singles' time "
            f"(singles/batch = {fmt_ratio(ratio(singles_s, batch_s))}).",
            describe_args(args),
        ],
    )
    return ScenarioReport(name="batch", tables=[table], throughput_unit="posts/s")


# ---- 4. cache ----------------------------------------------------------------------------------


def _stats_row(clients: int, label: str, stats: Stats, extra: Sequence[Any]) -> list[Any]:
    return [
        clients,
        label,
        stats.throughput,
        stats.p50_ms,
        stats.p95_ms,
        stats.p99_ms,
        stats.ok,
        stats.errors_5xx,
        stats.rejected,
        stats.reject_p50_ms,
        stats.failed,
        *extra,
    ]


def cache(ctx: Context) -> ScenarioReport:
    args = cache_args(ctx)
    url, hit_table, ceiling, hits = _hits_against_ceiling(
        ctx,
        args,
        title="Cache hits against the framework's ceiling",
        what="the Ingress answers from the shared layers, L3 and L2 if REDIS_URL is set",
        series_name="cache hit",
    )
    with ctx.step("cache: Zipf workload"):
        zipf_table = _zipf(ctx, url)
    # Before: the Ingress reads no shared layer (no disk, no Redis), so every hit crosses the
    # second hop to CacheLookup and comes from its memory (L1), as before the Ingress read L3.
    memory_only = {**args, "cache": {**args["cache"], "l3_enabled": False, "redis_url": None}}
    _, memory_table, memory_ceiling, memory_hits = _hits_against_ceiling(
        ctx,
        memory_only,
        title="Before: every hit through CacheLookup (L1 only)",
        what="the Ingress has no shared layer to read and asks CacheLookup, two Serve hops",
        series_name="cache hit via CacheLookup",
        ceiling_name="constant endpoint (second deployment)",
    )
    return ScenarioReport(
        name="cache",
        tables=[hit_table, memory_table, zipf_table],
        series=[ceiling, hits, memory_ceiling, memory_hits],
        headline={},
    )


def _hits_against_ceiling(
    ctx: Context,
    args: dict[str, Any],
    *,
    title: str,
    what: str,
    series_name: str,
    ceiling_name: str = "constant endpoint",
) -> tuple[str, Table, Series, Series]:
    """Cache hits and the constant endpoint at each concurrency, alternating which goes first;
    the graph deployed with `args`. Returns the graph's URL, the table and both series."""
    plan = ctx.plan
    with ctx.step(f"cache: start Serve + constant endpoint ({series_name})"):
        url = ctx.apps.deploy(args, with_constant=True)
    with ctx.step(f"cache: pre-fill {plan.prefill_posts} posts"):
        bodies = prefill(ctx, url)

    def body_for(i: int) -> dict[str, Any]:
        return bodies[i % len(bodies)]

    ceiling = Series(ceiling_name)
    hits = Series(series_name)
    rows: list[list[Any]] = []
    ratios: list[float] = []
    layers: Counter[str] = Counter()
    for level_index, clients in enumerate(plan.cache_levels):
        load = Load(clients, plan.cache_duration_s, plan.cache_max_requests, 60)
        targets = {
            "constant": http_target(f"{url}{CONSTANT_ROUTE}", body_for, clients, 60),
            "cache hit": http_target(f"{url}/v1/posts", body_for, clients, 60, cache_info),
        }
        order = list(targets) if level_index % 2 == 0 else list(reversed(targets))
        measured: dict[str, LoadRun] = {}
        for name in order:
            with ctx.step(f"cache: {clients} clients, {name} ({series_name})"):
                measured[name] = run_load(targets[name], load)
        const_stats, hit_stats = measured["constant"].stats(), measured["cache hit"].stats()
        answered = [r.info for r in measured["cache hit"].ok_records()]
        hit_count = sum(1 for info in answered if info.get("hit"))
        layers.update(str(info.get("layer")) for info in answered if info.get("hit"))
        share = ratio(hit_stats.throughput, const_stats.throughput)
        ratios.append(share)
        ceiling.add(clients, const_stats.throughput, const_stats.p50_ms, const_stats.p95_ms)
        hits.add(clients, hit_stats.throughput, hit_stats.p50_ms, hit_stats.p95_ms)
        rows.append(_stats_row(clients, "constant endpoint", const_stats, [None, None, None]))
        rows.append(
            _stats_row(
                clients,
                "POST /v1/posts (hit)",
                hit_stats,
                [
                    hit_count,
                    fmt_percent(share),
                    fmt_ratio(ratio(hit_stats.p50_ms, const_stats.p50_ms)),
                ],
            )
        )
    worst = min(ratios) if ratios else math.nan
    answered_by = ", ".join(f"{layer}: {count}" for layer, count in sorted(layers.items()))
    table = Table(
        title=title,
        description=(
            f"POST /v1/posts for {len(bodies)} pre-filled posts (cache hits; {what}) against a "
            "constant Serve endpoint on the same proxy (second app at /const, same request "
            "bodies), alternating which goes first at each concurrency; the hit path's share "
            "of the ceiling's req/s."
        ),
        headers=[
            "clients",
            "target",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "2xx",
            "5xx",
            "429/503",
            "rejected p50 ms",
            "failed",
            "hits",
            "of ceiling req/s",
            "p50 vs ceiling",
        ],
        rows=rows,
        notes=[
            f"Lowest share of the ceiling: {fmt_percent(worst)} (target ≥ "
            f"{CACHE_TARGET:.0%}): {'met' if worst >= CACHE_TARGET else 'NOT met'}.",
            f"Hits by the layer that answered (`metadata.cache.layer`): {answered_by or 'none'}.",
            f"Each run: {plan.cache_duration_s:.0f} s or {plan.cache_max_requests} requests. "
            "The load generator runs on the same CPUs as Serve, so both sides pay for it alike.",
            "The cache scenarios run the graph with small token budgets (content 4-24 tokens, "
            "title and hashtags 8) so pre-fill and misses are fast; hit latency does not depend "
            f"on them. L1 is limited to {CACHE_L1_ENTRIES} entries.",
            describe_args(args),
        ],
    )
    return url, table, ceiling, hits


def _zipf(ctx: Context, url: str) -> Table:
    plan = ctx.plan
    topics = zipf_topics(plan.zipf_topics)
    draws = zipf_sample(plan.zipf_topics, plan.zipf_s, plan.zipf_requests, seed=20240601)

    def body_for(i: int) -> dict[str, Any]:
        rank = draws[i]
        return {
            "topic": topics[rank],
            "length": LENGTH,
            "seed": ctx.seed_base + 500_000 + rank,  # fixed per topic: repeats are hits
        }

    load = Load(plan.zipf_concurrency, plan.zipf_budget_s, plan.zipf_requests, plan.zipf_budget_s)
    run = run_load(
        http_target(
            f"{url}/v1/posts", body_for, plan.zipf_concurrency, load.hard_limit_s, cache_info
        ),
        load,
    )
    stats = run.stats()
    ok = run.ok_records()
    layers = Counter(r.info["layer"] if r.info.get("hit") else "miss" for r in ok)
    hit_ms = [r.latency_s * 1000 for r in ok if r.info.get("hit")]
    miss_ms = [r.latency_s * 1000 for r in ok if not r.info.get("hit")]
    sent = draws[: stats.requests]
    repeats = len(sent) - len(set(sent))
    configured = ctx.apps.readiness.get("cache", {})
    layer_names = ", ".join(f"{k}: {v}" for k, v in configured.items()) or "unknown"

    def share(key: str) -> str:
        return fmt_percent(ratio(layers.get(key, 0), len(ok)))

    return Table(
        title=f"Zipf workload (s = {plan.zipf_s}) over {plan.zipf_topics} topics",
        description=(
            f"{stats.requests} requests, topics drawn from Zipf(s = {plan.zipf_s}) over "
            f"{plan.zipf_topics} topics with one fixed seed per topic (a repeated topic is the "
            f"same cache key), {plan.zipf_concurrency} clients in closed loop; cache layer of "
            "each answer from `metadata.cache.layer`."
        ),
        headers=[
            "requests",
            "2xx",
            "repeats in sample",
            "hit ratio",
            "L1",
            "L2",
            "L3",
            "miss",
            "hit p50 ms",
            "miss p50 ms",
            "req/s",
        ],
        rows=[
            [
                stats.requests,
                stats.ok,
                repeats,
                fmt_percent(ratio(len(hit_ms), len(ok))),
                share("l1"),
                share("l2"),
                share("l3"),
                share("miss"),
                percentile(hit_ms, 50),
                percentile(miss_ms, 50),
                stats.throughput,
            ]
        ],
        notes=[
            f"Cache layers in this run (from /readyz): {layer_names}. L2 is Redis and is on "
            "only when REDIS_URL is set; L3 is a fresh directory for this run.",
            "'repeats in sample' is the best possible hit count; a repeat sent while its first "
            "request is still generating can miss.",
        ],
    )


# ---- 5. handle ---------------------------------------------------------------------------------


def handle(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    args = cache_args(ctx)
    with ctx.step("handle: start Serve (cache on, small budget) and pre-fill"):
        url = ctx.apps.deploy(args, with_constant=True)
        bodies = prefill(ctx, url)

    def hit_body(i: int) -> dict[str, Any]:
        return bodies[i % len(bodies)]

    series = {"HTTP": Series("HTTP (hit)"), "handle": Series("handle (hit)")}
    rows: list[list[Any]] = []
    for level_index, clients in enumerate(plan.handle_levels):
        load = Load(clients, plan.handle_duration_s, plan.cache_max_requests, 60)
        targets = {
            "HTTP": http_target(f"{url}/v1/posts", hit_body, clients, 60, cache_info),
            "handle": handle_target(hit_body, cache_info),
        }
        order = list(targets) if level_index % 2 == 0 else list(reversed(targets))
        measured = {}
        for name in order:
            with ctx.step(f"handle: {clients} clients, {name}"):
                measured[name] = run_load(targets[name], load).stats()
        for name in targets:
            stats = measured[name]
            series[name].add(clients, stats.throughput, stats.p50_ms, stats.p95_ms)
        rows += _handle_rows("cache hit", clients, measured)

    seeds = [ctx.next_seed() for _ in range(2 * plan.nocache_requests)]
    clients = plan.nocache_concurrency
    load = Load(clients, plan.nocache_budget_s, plan.nocache_requests, plan.nocache_budget_s)
    fresh: dict[str, Stats] = {}
    for offset, name in enumerate(("HTTP", "handle")):

        def fresh_body(i: int, offset: int = offset) -> dict[str, Any]:
            seed = seeds[offset * plan.nocache_requests + i]
            return request_body(i, seed, length=LENGTH, use_cache=False)

        target = (
            http_target(f"{url}/v1/posts", fresh_body, clients, load.hard_limit_s)
            if name == "HTTP"
            else handle_target(fresh_body)
        )
        with ctx.step(f"handle: cache off, {name}"):
            fresh[name] = run_load(target, load).stats()
    rows += _handle_rows("cache off (generates)", clients, fresh)

    table = Table(
        title="Python handle from this driver against HTTP",
        description=(
            "The same requests through `serve.get_app_handle('linkedin-posts').generate.remote("
            "dict)` from the benchmark driver and through POST /v1/posts: cache hits (the "
            "framework path) at each concurrency, alternating which goes first, then a small "
            f"cache-off run ({plan.nocache_requests} requests, {clients} clients, small token "
            "budget)."
        ),
        headers=[
            "load",
            "clients",
            "path",
            "req/s",
            "p50 ms",
            "p95 ms",
            "2xx",
            "errors",
            "req/s vs HTTP",
            "p50 vs HTTP",
        ],
        rows=rows,
        notes=[
            "HTTP requests pass the proxy and the FastAPI edge; handle calls go from this driver "
            "straight to the Ingress replica's `generate` method.",
            describe_args(args),
        ],
    )
    return ScenarioReport(name="handle", tables=[table], series=list(series.values()))


def _handle_rows(load: str, clients: int, measured: dict[str, Stats]) -> list[list[Any]]:
    http = measured["HTTP"]
    rows = []
    for name in ("HTTP", "handle"):
        stats = measured[name]
        rows.append(
            [
                load,
                clients,
                name,
                stats.throughput,
                stats.p50_ms,
                stats.p95_ms,
                stats.ok,
                stats.requests - stats.ok,
                None if name == "HTTP" else fmt_ratio(ratio(stats.throughput, http.throughput)),
                None if name == "HTTP" else fmt_ratio(ratio(stats.p50_ms, http.p50_ms)),
            ]
        )
    return rows


SCENARIOS: dict[str, Callable[[Context], ScenarioReport]] = {
    "baseline": baseline,
    "graph": graph,
    "batch": batch,
    "cache": cache,
    "handle": handle,
    "quality": quality.run,
}
