"""Posts written in this process, without Ray, the way an idle graph writes them.

The CLI (`linkedin-posts generate` without --url) and the quality harness both use it: every job
of a post (`post_jobs`, every candidate), decoded part by part in batches, compiled, and one more
body where clean-up left the body short of its length band, as `CacheLookup.write_post` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deployments.compiler import PostCompiler, body_below_band
from deployments.generator import TextGenerator
from deployments.prompts import PARTS, extra_body_job, post_jobs
from deployments.schemas import GenerationJob, Post, PostRequest
from deployments.settings import GenerationSettings


@dataclass
class WrittenPosts:
    posts: list[Post]
    # Each part's model text per request: its candidates, in order (none: the part was not asked).
    raw: dict[str, list[list[str]]]
    seconds: dict[str, float] = field(default_factory=dict)  # decode time per part
    new_tokens: dict[str, int] = field(default_factory=dict)  # tokens written per part


def write_posts(
    generator: TextGenerator,
    compiler: PostCompiler,
    requests: Sequence[PostRequest],
    seeds: Sequence[int],
    generation: GenerationSettings,
    *,
    chunk: int,
    on_part: Callable[[str, int], None] = lambda part, rows: None,
    on_part_done: Callable[[], None] = lambda: None,
) -> WrittenPosts:
    """The posts of `requests` (request i drawn from seeds[i]); `on_part(part, rows)` is called
    before each part is decoded, `on_part_done()` after."""
    jobs_by_post = [
        post_jobs(request, seed, generation, all_candidates=True)
        for request, seed in zip(requests, seeds)
    ]
    written = WrittenPosts([], {part: [[] for _ in requests] for part in PARTS})
    for part in PARTS:
        rows = [(i, job) for i, jobs in enumerate(jobs_by_post) for job in jobs.get(part, [])]
        on_part(part, len(rows))
        rows.sort(key=lambda row: row[1].max_new_tokens)  # rows of one budget end together
        _decode(generator, written, part, rows, chunk)
        on_part_done()

    def compile_post(i: int) -> Post:
        raw = written.raw
        hashtags = next(iter(raw["hashtags"][i]), "")
        return compiler.compile(requests[i], raw["title"][i], raw["content"][i], hashtags)

    written.posts = [compile_post(i) for i in range(len(requests))]
    short = [
        i for i, post in enumerate(written.posts) if body_below_band(requests[i], post.content)
    ]
    if short:
        extra = [
            (i, extra_body_job(requests[i], seeds[i], generation, len(written.raw["content"][i])))
            for i in short
        ]
        _decode(generator, written, "content", extra, chunk)
        for i in short:
            written.posts[i] = compile_post(i)
    return written


def _decode(
    generator: TextGenerator,
    written: WrittenPosts,
    part: str,
    rows: list[tuple[int, GenerationJob]],
    chunk: int,
) -> None:
    """Decode (request index, job) rows of one part in batches of `chunk`; texts, time and tokens
    go to `written`."""
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(rows), chunk):
        batch = rows[start : start + chunk]
        for (i, _), result in zip(batch, generator.generate_batch([job for _, job in batch])):
            if isinstance(result, Exception):
                raise RuntimeError(f"{part} of request {i} failed: {result}") from result
            written.raw[part][i].append(result.text)
            tokens += result.new_tokens
    written.seconds[part] = written.seconds.get(part, 0.0) + time.perf_counter() - started
    written.new_tokens[part] = written.new_tokens.get(part, 0) + tokens
