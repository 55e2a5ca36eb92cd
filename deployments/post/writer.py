"""Writing one post: every part's jobs at once, the Compiler, and one more body when clean-up
left the body short of its length band or, while the writer is idle, off the topic.

`write_post` is the one place that sequence lives. Where the jobs run and where the post is
compiled are its two arguments: the graph's writer (`PostWriter`) sends jobs to the model
deployments and the Compiler deployment; the local writer (`deployments.post.local_writer`, the CLI
and the quality harness) runs them on in-process engines and a `PostCompiler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deployments.post.compiler import wants_another_body
from deployments.post.prompts import extra_body_job, post_jobs, wants_all_candidates
from deployments.schemas import GenerationJob, GenerationResult, Post, PostPart, PostRequest
from deployments.settings import GenerationSettings

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

# Streaming: called with each piece of a part's text as its model writes it.
OnPiece = Callable[[PostPart, str], None]
# Each job on its part's model, all at once; the results in order. Given an OnPiece, the first
# job of each part streams its text to it.
RunJobs = Callable[
    [Sequence[tuple[PostPart, GenerationJob]], OnPiece | None], Awaitable[list[GenerationResult]]
]
# The post from every part's candidates, in the order they were written.
CompileParts = Callable[[PostRequest, dict[PostPart, list[GenerationResult]]], Awaitable[Post]]


@dataclass
class WrittenPost:
    post: Post
    candidates: dict[PostPart, list[GenerationResult]]
    timings_ms: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's milliseconds to timings[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - started) * 1000


async def write_post(
    request: PostRequest,
    seed: int,
    generation: GenerationSettings,
    *,
    all_candidates: bool,
    run_jobs: RunJobs,
    compile_parts: CompileParts,
    on_piece: OnPiece | None = None,
) -> WrittenPost:
    """The post of `request` drawn from `seed`: every candidate of every part when
    `all_candidates` (best of n), else one of each; one more body when what the Compiler removed
    (holes, letter talk, an invented persona) left too little or, idle, the body wandered off
    the topic, and the best of all of them. `on_piece` gets the text of the first job of each
    part as it is written (the post is still the Compiler's choice among every candidate)."""
    jobs = post_jobs(request, seed, generation, all_candidates=all_candidates)
    timings = {"generation": 0.0, "compile": 0.0}
    pending = [(part, job) for part, part_jobs in jobs.items() for job in part_jobs]
    candidates: dict[PostPart, list[GenerationResult]] = {part: [] for part in jobs}
    with _timed(timings, "generation"):
        results = await run_jobs(pending, on_piece)
    for (part, _), result in zip(pending, results):
        candidates[part].append(result)
    with _timed(timings, "compile"):
        post = await compile_parts(request, candidates)
    if wants_another_body(request, post.content, idle=all_candidates):
        extra = extra_body_job(request, seed, generation, len(candidates["content"]))
        with _timed(timings, "generation"):
            candidates["content"] += await run_jobs([("content", extra)], None)
        with _timed(timings, "compile"):
            post = await compile_parts(request, candidates)
    return WrittenPost(post, candidates, {k: round(ms, 1) for k, ms in timings.items()})


class PostWriter:
    """Writes posts for CacheLookup on the model deployments and the Compiler deployment; asks
    every candidate while it has few posts in hand (best of n where capacity is idle)."""

    def __init__(
        self,
        generation: GenerationSettings,
        run_jobs: RunJobs,
        compile_parts: CompileParts,
    ) -> None:
        self.generation = generation
        self.run_jobs = run_jobs
        self.compile_parts = compile_parts
        self.writing = 0  # posts in hand now: the load best of n follows

    @classmethod
    def on_deployments(
        cls,
        generation: GenerationSettings,
        models: Mapping[PostPart, DeploymentHandle],
        compiler: DeploymentHandle,
    ) -> PostWriter:
        """The graph's writer: each job on its part's model deployment, the post compiled by
        the Compiler deployment; a call whose replica died is sent once more (replica_calls)."""
        from deployments import replica_calls  # Ray: the local writer runs without it

        def run_job(part: PostPart, job: GenerationJob, on_piece: OnPiece | None) -> Awaitable:
            if on_piece is None:
                send = functools.partial(models[part].generate.remote, job)
                return replica_calls.call(send, part)
            streaming = models[part].options(stream=True).generate_stream
            return replica_calls.stream(
                functools.partial(streaming.remote, job),
                part,
                lambda piece: on_piece(part, piece),
            )

        async def run_jobs(
            jobs: Sequence[tuple[PostPart, GenerationJob]], on_piece: OnPiece | None
        ) -> list[GenerationResult]:
            streamed = first_of_each_part(jobs) if on_piece is not None else set()
            calls = [
                asyncio.ensure_future(run_job(part, job, on_piece if i in streamed else None))
                for i, (part, job) in enumerate(jobs)
            ]
            try:
                return list(await asyncio.gather(*calls))
            except BaseException:
                # Cancelled, or one part failed or was shed (a full model queue): nobody will
                # use the other parts of this post, so stop decoding them.
                for pending in calls:
                    pending.cancel()
                raise

        async def compile_parts(
            request: PostRequest, by_part: dict[PostPart, list[GenerationResult]]
        ) -> Post:
            send = functools.partial(compiler.compile.remote, request, by_part)
            return await replica_calls.call(send, "Compiler.compile")

        return cls(generation, run_jobs, compile_parts)

    async def write(self, request: PostRequest, on_piece: OnPiece | None = None) -> dict:
        """What the cache stores: the post, its per-part and stage timings, and the request it
        answers (so that popular entries can be refreshed). `on_piece`: as in `write_post`."""
        seed = request.seed if request.seed is not None else uuid.uuid4().int % 2**63
        all_candidates = wants_all_candidates(self.writing, self.generation.candidates.busy_writes)
        self.writing += 1
        try:
            written = await write_post(
                request,
                seed,
                self.generation,
                all_candidates=all_candidates,
                run_jobs=self.run_jobs,
                compile_parts=self.compile_parts,
                on_piece=on_piece,
            )
        finally:
            self.writing -= 1
        post = written.post
        post.metadata.timings_ms = {
            **{
                part: round(max(r.elapsed_ms for r in results), 1)
                for part, results in written.candidates.items()
            },
            **written.timings_ms,
        }
        return {**post.model_dump(mode="json"), "request": request.model_dump(mode="json")}


def first_of_each_part(jobs: Sequence[tuple[PostPart, GenerationJob]]) -> set[int]:
    """Indexes of each part's first job: the ones that stream."""
    first: dict[PostPart, int] = {}
    for i, (part, _) in enumerate(jobs):
        first.setdefault(part, i)
    return set(first.values())
