"""TitleModel, ContentModel, HashtagModel: thin Serve wrappers over TextGenerator.

Three deployments of one class so each part of a post scales on its own (the body needs ten times
the tokens of a title). Requests are batched with `@serve.batch`; its knobs come from
`user_config` and change without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, ClassVar

from ray import serve

from deployments.generator import TextGenerator
from deployments.metrics import ModelMetrics
from deployments.model_loader import load_model
from deployments.schemas import GenerationJob, GenerationResult, PostPart
from deployments.settings import AppSettings, BatchingSettings

logger = logging.getLogger("ray.serve")


class PartModel:
    part: ClassVar[PostPart]

    def __init__(self, settings: AppSettings) -> None:
        self.generator = TextGenerator(
            load_model(settings.model), settings.generation, settings.model
        )
        self.stats = {"batches": 0, "rows": 0, "cancelled": 0}
        self.metrics = ModelMetrics(self.part)
        self.reconfigure(settings.batching.model_dump())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        batching = BatchingSettings(**user_config)
        self._generate_batch.set_max_batch_size(batching.max_batch_size)
        self._generate_batch.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)

    async def generate(self, job: GenerationJob) -> GenerationResult:
        cancelled = threading.Event()
        try:
            result = await self._generate_batch(job, cancelled)
        except asyncio.CancelledError:
            # The caller went away: the running batch stops decoding this row (Serve drops it
            # from batches that have not started yet).
            cancelled.set()
            self.stats["cancelled"] += 1
            raise
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.1)
    async def _generate_batch(
        self, jobs: list[GenerationJob], cancelled: list[threading.Event]
    ) -> list[GenerationResult | Exception]:
        self.stats["batches"] += 1
        self.stats["rows"] += len(jobs)
        # Decoding runs in a worker thread so the replica keeps answering health checks and
        # queueing the next batch meanwhile.
        results = await asyncio.to_thread(
            self.generator.generate_batch, jobs, lambda row: cancelled[row].is_set()
        )
        tokens = sum(r.new_tokens for r in results if isinstance(r, GenerationResult))
        self.metrics.record_batch(len(jobs), tokens)
        return results

    def info(self) -> dict[str, Any]:
        loaded = self.generator.loaded
        return {
            "part": self.part,
            "model": loaded.model_id,
            "device": loaded.device,
            "dtype": loaded.dtype,
            **self.stats,
        }

    def check_health(self) -> None:
        if self.generator.loaded.model is None:
            raise RuntimeError("model not loaded")


class TitleModel(PartModel):
    part = "title"


class ContentModel(PartModel):
    part = "content"


class HashtagModel(PartModel):
    part = "hashtags"
