"""GenerationEngine: what turns generation jobs into text, for the model deployments, the CLI
and the benchmarks alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from deployments.schemas import GenerationJob, GenerationResult
from deployments.settings import BatchingSettings


@runtime_checkable
class GenerationEngine(Protocol):
    """What turns generation jobs into text. Anchors: Ray Serve LLM's `LLMEngine` (start,
    generate, check_health, shutdown), vLLM's scheduler interface. A second engine is one new
    class behind this protocol and one more value of the `model.engine` setting."""

    def submit(
        self,
        jobs: Sequence[GenerationJob],
        on_text: Sequence[Callable[[str], None] | None] | None = None,
    ) -> list[Future[GenerationResult]]:
        """Queue jobs (to be batched together where the engine batches); each future gets its
        job's result, or an exception for that job alone. Cancelling a future stops its job.
        `on_text[i]`, when given, is called (from any thread) with each piece of job i's text
        as it is written; the pieces add up to its result's text (streaming)."""
        ...

    def reconfigure(self, batching: BatchingSettings) -> None:
        """Apply new batching knobs without a restart (Serve's user_config)."""
        ...

    def info(self) -> dict[str, Any]:
        """The model, device and dtype, the batching knobs, jobs waiting, counters."""
        ...

    def check_health(self) -> None:
        """Raise when the engine cannot answer (no model, a dead decode thread)."""
        ...

    def close(self) -> None:
        """Stop; every job still queued or running is answered with an error."""
        ...
