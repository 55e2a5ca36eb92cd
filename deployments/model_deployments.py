"""TitleModel, ContentModel, HashtagModel: thin Serve wrappers over TextGenerator.

Three deployments of one class so each part of a post scales on its own (the body needs ten times
the tokens of a title). Each replica decodes in a DecodeEngine thread that batches continuously:
requests join the running batch between two decode steps and leave it the step they end.
`@serve.batch` hands requests that arrive together to the engine in one call; its knobs and the
engine's come from `user_config` and change without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from dataclasses import asdict
from typing import Any, ClassVar

import torch
from ray import serve

from deployments.engine import DecodeEngine
from deployments.generator import TextGenerator
from deployments.local_ray import keep_replica_server_on_loopback
from deployments.metrics import ModelMetrics
from deployments.model_loader import load_model
from deployments.schemas import GenerationJob, GenerationResult, PostPart
from deployments.settings import AppSettings, BatchingSettings

logger = logging.getLogger("ray.serve")


class PartModel:
    part: ClassVar[PostPart]

    def __init__(self, settings: AppSettings) -> None:
        keep_replica_server_on_loopback()
        model_settings = settings.model
        threads = settings.deployments[type(self).__name__].torch_threads
        if threads:
            model_settings = model_settings.model_copy(update={"torch_threads": threads})
        self.generator = TextGenerator(
            load_model(model_settings), settings.generation, model_settings
        )
        self.engine = DecodeEngine(self.generator, settings.batching.max_batch_size)
        self.cancelled = 0
        self.metrics = ModelMetrics(self.part)
        self.reconfigure(settings.batching.model_dump())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        batching = BatchingSettings(**user_config)
        self._admit.set_max_batch_size(batching.max_batch_size)
        self._admit.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
        self.engine.max_rows = batching.max_batch_size
        self.engine.continuous = batching.continuous

    async def generate(self, job: GenerationJob) -> GenerationResult:
        future = await self._admit(job)
        try:
            result: GenerationResult = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The caller went away: its row leaves the batch at the next step.
            future.cancel()
            self.cancelled += 1
            raise
        self.metrics.record_row(result.batch_size, result.new_tokens)
        return result

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _admit(self, jobs: list[GenerationJob]) -> list[Future]:
        """Requests that arrive together are handed to the engine together; each caller then
        waits for its own row only, which the engine answers the step it ends."""
        return self.engine.submit(jobs)

    def info(self) -> dict[str, Any]:
        loaded = self.generator.loaded
        return {
            "part": self.part,
            "model": loaded.model_id,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "torch_threads": torch.get_num_threads(),
            "continuous": self.engine.continuous,
            "max_rows": self.engine.max_rows,
            "waiting": self.engine.waiting(),
            "cancelled": self.cancelled,
            **asdict(self.engine.stats),
            "mean_batch": self.engine.stats.mean_batch,
        }

    def check_health(self) -> None:
        if self.generator.loaded.model is None:
            raise RuntimeError("model not loaded")
        if not self.engine.alive:
            raise RuntimeError("the decode engine thread has stopped")


class TitleModel(PartModel):
    part = "title"


class ContentModel(PartModel):
    part = "content"


class HashtagModel(PartModel):
    part = "hashtags"
