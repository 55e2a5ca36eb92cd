"""TitleModel, ContentModel, HashtagModel: thin Serve wrappers over a GenerationEngine.

Three deployments of one class so each part of a post scales on its own (the body needs ten times
the tokens of a title) and may run a model of its own (`part_models`). The engine batches
continuously: requests join the running batch between two decode steps and leave it the step
they end. `@serve.batch` hands requests that arrive together to the engine in one call; its knobs
and the engine's come from `user_config` and change without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any, ClassVar

from ray import serve

from deployments.engine import build_engine
from deployments.local_ray import keep_replica_server_on_loopback
from deployments.metrics import ModelMetrics
from deployments.schemas import GenerationJob, GenerationResult, PostPart
from deployments.settings import AppSettings, BatchingSettings
from deployments.streaming import queued_until, stream_pace

logger = logging.getLogger("ray.serve")


class PartModel:
    part: ClassVar[PostPart]

    def __init__(self, settings: AppSettings) -> None:
        keep_replica_server_on_loopback()
        model_settings = settings.model_for(self.part)
        threads = settings.deployments[type(self).__name__].torch_threads
        if threads:
            model_settings = model_settings.model_copy(update={"torch_threads": threads})
        self.metrics = ModelMetrics(self.part)
        started = time.perf_counter()
        self.engine = build_engine(
            model_settings,
            settings.generation,
            settings.batching,
            on_load=self.metrics.record_load,
        )
        self.metrics.record_model_load(
            time.perf_counter() - started, self.engine.info().get("converted_weights", "none")
        )
        self.stream_pace = stream_pace(settings.generation)
        self.cancelled = 0
        self.reconfigure(settings.batching.model_dump())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        batching = BatchingSettings(**user_config)
        self._admit.set_max_batch_size(batching.max_batch_size)
        self._admit.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
        self.engine.reconfigure(batching)

    async def generate(self, job: GenerationJob) -> GenerationResult:
        future = await self._admit(job)
        try:
            result: GenerationResult = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The caller went away: its row leaves the batch at the next step.
            future.cancel()
            self.cancelled += 1
            raise
        self.metrics.record_row(result)
        return result

    async def generate_stream(self, job: GenerationJob) -> AsyncIterator[str | GenerationResult]:
        """The job's text piece by piece (str), then its GenerationResult (call it through
        `handle.options(stream=True)`). Each piece crosses Ray as one object: pieces that come
        sooner than the replica's pace allows (deployments.streaming.StreamPace) go together."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str] = asyncio.Queue()

        def on_text(piece: str) -> None:  # the engine's thread
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        # Straight to the engine, which batches continuously; @serve.batch only groups calls.
        future = self.engine.submit([job], on_text=[on_text])[0]
        finished = asyncio.wrap_future(future)
        since = time.perf_counter()
        first = True
        try:
            # The engine sends a row's last pieces before its result: none is left behind.
            with self.stream_pace.stream():
                async for group in queued_until(pieces, finished, self.stream_pace.interval_s):
                    self.metrics.record_piece(time.perf_counter() - since, first=first)
                    since, first = time.perf_counter(), False
                    yield "".join(group)
            result: GenerationResult = await finished
        finally:
            # Cancelled or closed: the caller went away, the row leaves the batch next step.
            if future.cancel():
                self.cancelled += 1
        self.metrics.record_row(result)
        yield result

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _admit(self, jobs: list[GenerationJob]) -> list[Future]:
        """Requests that arrive together are handed to the engine together; each caller then
        waits for its own row only, which the engine answers the step it ends."""
        return self.engine.submit(jobs)

    def info(self) -> dict[str, Any]:
        return {"part": self.part, **self.engine.info(), "cancelled": self.cancelled}

    def check_health(self) -> None:
        self.engine.check_health()


class TitleModel(PartModel):
    part = "title"


class ContentModel(PartModel):
    part = "content"


class HashtagModel(PartModel):
    part = "hashtags"
