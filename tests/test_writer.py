"""write_post, the one sequence that writes a post, on a tiny real model without Ray: every
candidate of every part at once, the Compiler, one more body when the body came out short."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from deployments.engine import GenerationEngine, build_engine
from deployments.post.compiler import PostCompiler, wants_another_body
from deployments.post.writer import OnPiece, PostWriter, first_of_each_part, write_post
from deployments.schemas import GenerationJob, GenerationResult, Post, PostPart, PostRequest
from deployments.settings import BatchingSettings, GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION

GENERATION = GenerationSettings(**TINY_GENERATION)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[GenerationEngine]:
    model = ModelSettings(model=str(tiny_model_dir), device="cpu")
    engine = build_engine(model, GENERATION, BatchingSettings())
    yield engine
    engine.close()


class Recorder:
    """Runs jobs on the engine and compiles with the real Compiler, keeping what was asked."""

    def __init__(self, engine: GenerationEngine) -> None:
        self.engine = engine
        self.compiler = PostCompiler("tiny")
        self.calls: list[list[PostPart]] = []
        self.compiled: list[dict[PostPart, int]] = []

    async def run_jobs(
        self, jobs: Sequence[tuple[PostPart, GenerationJob]], on_piece: OnPiece | None = None
    ) -> list[GenerationResult]:
        self.calls.append([part for part, _ in jobs])
        streamed = first_of_each_part(jobs) if on_piece is not None else set()
        sinks = [
            functools.partial(on_piece, part) if on_piece and i in streamed else None
            for i, (part, _) in enumerate(jobs)
        ]
        futures = self.engine.submit([job for _, job in jobs], on_text=sinks)
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    async def compile_parts(
        self, request: PostRequest, by_part: dict[PostPart, list[GenerationResult]]
    ) -> Post:
        self.compiled.append({part: len(results) for part, results in by_part.items()})
        return self.compiler.compile_candidates(request, by_part)


@pytest.mark.parametrize("all_candidates", [True, False])
def test_every_part_at_once_then_the_compiler(
    engine: GenerationEngine, all_candidates: bool
) -> None:
    recorder = Recorder(engine)
    request = PostRequest(topic="Pairing with a new teammate", num_hashtags=2)
    written = asyncio.run(
        write_post(
            request,
            7,
            GENERATION,
            all_candidates=all_candidates,
            run_jobs=recorder.run_jobs,
            compile_parts=recorder.compile_parts,
        )
    )
    titles, bodies = (3, 2) if all_candidates else (1, 1)
    # One call with every job of every part: the three parts decode concurrently.
    assert sorted(recorder.calls[0]) == sorted(
        ["title"] * titles + ["content"] * bodies + ["hashtags"]
    )
    assert recorder.compiled[0] == {"title": titles, "content": bodies, "hashtags": 1}
    another = wants_another_body(
        request,
        recorder.compiler.compile(
            request,
            [r.text for r in written.candidates["title"][:titles]],
            [r.text for r in written.candidates["content"][:bodies]],
            written.candidates["hashtags"][0].text,
        ).content,
        idle=all_candidates,
    )
    # A body the clean-up left short (or, idle, off the topic) gets one more sample, and the
    # post is compiled again.
    assert recorder.calls[1:] == ([["content"]] if another else [])
    assert len(written.candidates["content"]) == bodies + another
    assert (
        written.post.content
        == recorder.compiler.compile(
            request,
            [r.text for r in written.candidates["title"]],
            [r.text for r in written.candidates["content"]],
            written.candidates["hashtags"][0].text,
        ).content
    )
    assert set(written.timings_ms) == {"generation", "compile"}


def test_no_hashtag_job_when_none_is_asked(engine: GenerationEngine) -> None:
    recorder = Recorder(engine)
    request = PostRequest(topic="Quiet weeks", num_hashtags=0)
    written = asyncio.run(
        write_post(
            request,
            3,
            GENERATION,
            all_candidates=False,
            run_jobs=recorder.run_jobs,
            compile_parts=recorder.compile_parts,
        )
    )
    assert "hashtags" not in recorder.calls[0] and "hashtags" not in written.candidates
    assert written.post.hashtags == []


def test_the_writer_asks_every_candidate_only_while_it_is_not_busy(
    engine: GenerationEngine,
) -> None:
    recorder = Recorder(engine)
    writer = PostWriter(GENERATION, recorder.run_jobs, recorder.compile_parts)
    busy = GENERATION.candidates.busy_writes
    requests = [PostRequest(topic=f"Busy writer {i}", seed=i) for i in range(busy + 2)]

    async def write_all() -> list[dict]:
        return await asyncio.gather(*(writer.write(r) for r in requests))

    stored = asyncio.run(write_all())
    firsts = [calls.count("title") for calls in recorder.calls if "title" in calls]
    # The first `busy + 1` posts start while the writer has at most `busy` others in hand.
    assert firsts == [3] * (busy + 1) + [1] * (len(requests) - busy - 1)
    assert writer.writing == 0
    for value, request in zip(stored, requests):
        assert value["request"] == request.model_dump(mode="json")
        assert {"title", "content", "generation", "compile"} <= set(value["metadata"]["timings_ms"])


def test_the_first_job_of_each_part_streams_its_text(engine: GenerationEngine) -> None:
    recorder = Recorder(engine)
    request = PostRequest(topic="Streaming a post", num_hashtags=2)
    pieces: dict[str, list[str]] = {}
    written = asyncio.run(
        write_post(
            request,
            11,
            GENERATION,
            all_candidates=True,
            run_jobs=recorder.run_jobs,
            compile_parts=recorder.compile_parts,
            on_piece=lambda part, piece: pieces.setdefault(part, []).append(piece),
        )
    )
    assert set(pieces) == {"title", "content", "hashtags"}
    for part, texts in pieces.items():
        assert "".join(texts) == written.candidates[part][0].text
    assert len(pieces["content"]) > 1
