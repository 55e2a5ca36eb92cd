"""The `Context` every scenario receives: its plan, the running Serve apps, this run's seeds,
the progress callbacks, and what an earlier scenario leaves for a later one (the baseline's
report, the tokenizer)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.plan import Plan
from benchmarks.quality.request_set import SEED_BASE
from benchmarks.report import ScenarioReport

if TYPE_CHECKING:
    # A type only: importing benchmarks.apps imports Ray.
    from benchmarks.apps import ServeApps


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
    quality_seed_base: int = SEED_BASE  # the quality scenario's seeds: base + 1000 x i
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

    def model_tokenizer(self) -> Any:
        """The service's default model's tokenizer, loaded once per run."""
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            from deployments.engine.model_loader import resolve_model_source
            from deployments.settings import AppSettings

            source = resolve_model_source(AppSettings.load().model)
            self.tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        return self.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> int:
        if not texts:
            return 0
        encoded = self.model_tokenizer()(list(texts), add_special_tokens=False)["input_ids"]
        return sum(len(ids) for ids in encoded)
