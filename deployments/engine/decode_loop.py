"""DecodeEngine, the GenerationEngine of the `torch` kind: one thread that keeps a DecodeBatch
decoding while jobs come and go.

Jobs are submitted from the replica's event loop and answered through futures; between two decode
steps the thread lets waiting jobs join the batch (up to `max_rows`), so a request never waits for
a whole batch to finish, and each answer is sent the step its row ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, dataclass
from typing import Any

import torch

from deployments.engine.core_share import CoreShare
from deployments.engine.generator import DecodeBatch, PendingRow, TextGenerator, TextSink
from deployments.schemas import GenerationJob, GenerationResult
from deployments.settings import BatchingSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineLoad:
    """What the engine holds now, for the replica's gauges."""

    rows: int  # decoding
    waiting: int  # submitted, not yet in the batch
    kv_bytes: int  # the batch's KV cache


# How often a busy engine reports its load (an idle one reports once, as it empties).
LOAD_REPORT_S = 0.5


@dataclass
class EngineStats:
    admitted: int = 0  # rows taken off the queue to join the batch
    groups: int = 0  # submissions (one per @serve.batch call)
    steps: int = 0
    row_steps: int = 0  # rows decoded, summed over steps: row_steps / steps is the mean batch

    @property
    def mean_batch(self) -> float:
        return self.row_steps / self.steps if self.steps else 0.0


def _resolve(future: Future, result: GenerationResult | Exception) -> None:
    """Answer a future unless its caller has cancelled it meanwhile."""
    try:
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class DecodeEngine:
    """GenerationEngine of the `torch` kind: continuous batching over a TextGenerator.
    `continuous=False` admits jobs only into an empty batch (fixed batches, as `generate`
    does), for comparison and for tests. With a `core_share`, the thread decodes on its share of
    the machine's cores among the replicas decoding now (engine.core_share)."""

    def __init__(
        self,
        generator: TextGenerator,
        max_rows: int,
        *,
        continuous: bool = True,
        core_share: CoreShare | None = None,
        on_load: Callable[[EngineLoad], None] | None = None,
    ) -> None:
        self.generator = generator
        self.core_share = core_share
        self.on_load = on_load
        self._busy_reported_at: float | None = None  # None: idle, and reported so (or never busy)
        self.max_rows = max_rows
        self.continuous = continuous
        self.stats = EngineStats()
        self._waiting: deque[PendingRow] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="decode-engine", daemon=True)
        self._thread.start()

    def submit(
        self, jobs: Sequence[GenerationJob], on_text: Sequence[TextSink | None] | None = None
    ) -> list[Future]:
        """Queue jobs to join the batch together; each future gets its job's result, or an
        exception for that job alone. Cancelling a future stops its row at the next step.
        `on_text[i]`, when given, gets job i's text piece by piece as it decodes."""
        futures: list[Future] = [Future() for _ in jobs]
        sinks = list(on_text) if on_text is not None else [None] * len(jobs)
        rows = [
            PendingRow(
                job=job,
                deliver=lambda result, f=future: _resolve(f, result),
                cancelled=future.cancelled,
                on_text=sink,
            )
            for job, future, sink in zip(jobs, futures, sinks, strict=True)
        ]
        with self._wake:
            if self._closed:
                raise RuntimeError("the decode engine is closed")
            self._waiting.extend(rows)
            self.stats.groups += 1
            self._wake.notify()
        return futures

    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def reconfigure(self, batching: BatchingSettings) -> None:
        self.max_rows = batching.max_batch_size
        self.continuous = batching.continuous

    def info(self) -> dict[str, Any]:
        loaded = self.generator.loaded
        return {
            "engine": "torch",
            "model": loaded.model_id,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "quantization": loaded.quantization,
            "converted_weights": loaded.converted_weights,
            "torch_threads": torch.get_num_threads(),
            "threads_follow_load": self.core_share is not None,
            "continuous": self.continuous,
            "max_rows": self.max_rows,
            "waiting": self.waiting(),
            **asdict(self.stats),
            "mean_batch": self.stats.mean_batch,
            "prefilled_tokens": self.generator.prefilled_tokens,
            "generated_tokens": self.generator.generated_tokens,
        }

    def check_health(self) -> None:
        if self.generator.loaded.model is None:
            raise RuntimeError("model not loaded")
        if not self.alive:
            raise RuntimeError("the decode engine thread has stopped")

    def close(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout_s)
        if self.core_share is not None:
            self.core_share.close()

    def _report_load(self, batch: DecodeBatch) -> None:
        """Tell `on_load` what the engine holds: every LOAD_REPORT_S while busy, and at once when
        the batch empties (so the gauges fall to zero with the load)."""
        if self.on_load is None:
            return
        now, last, busy = time.monotonic(), self._busy_reported_at, bool(batch.rows)
        if busy and last is not None and now - last < LOAD_REPORT_S:
            return  # busy, and reported lately
        if not busy and last is None:
            return  # idle, and reported so
        self._busy_reported_at = now if busy else None
        try:
            self.on_load(EngineLoad(len(batch.rows), self.waiting(), batch.kv_bytes()))
        except Exception:  # a gauge's failure is no reason to stop decoding
            logger.exception("reporting the engine's load failed")

    def _run(self) -> None:
        batch = DecodeBatch(self.generator)
        while True:
            with self._wake:
                while not self._waiting and not batch.rows and not self._closed:
                    self._wake.wait()
                if self._closed:
                    break
                room = batch.room(self.max_rows) if self.continuous or not batch.rows else 0
                joining = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            try:
                if self.core_share is not None:
                    self.core_share.follow(busy=bool(joining or batch.rows))
                batch.admit(joining)
                self.stats.admitted += len(joining)
                rows = len(batch.rows)
                batch.step()
                if rows:
                    self.stats.steps += 1
                    self.stats.row_steps += rows
                if self.core_share is not None and not batch.rows:
                    self.core_share.follow(busy=False)
                self._report_load(batch)
            except Exception as exc:  # never let the thread die with callers waiting on it
                logger.exception(
                    "decode step failed; failing the %d rows of the batch", len(batch.rows)
                )
                for row in batch.rows:
                    row.pending.deliver(exc)
                batch = DecodeBatch(self.generator)
        error = RuntimeError("the decode engine shut down")
        for row in [*(r.pending for r in batch.rows), *self._waiting]:
            row.deliver(error)
