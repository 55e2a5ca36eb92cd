"""The generation engine: `GenerationEngine`, the one interface the model deployments, the CLI
and the benchmarks use to turn jobs into text; `build_engine`, which picks the implementation by
the `model.engine` setting; and today's implementation, `DecodeEngine` (decode_loop) over this
project's own decode loop (generator: TextGenerator and DecodeBatch; kv_cache; sampling;
prompt_tokens), with the model loaded by model_loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from deployments.engine.core_share import CoreShare
from deployments.engine.decode_loop import DecodeEngine, EngineLoad
from deployments.engine.generator import TextGenerator
from deployments.engine.model_loader import load_model
from deployments.engine.protocol import GenerationEngine
from deployments.settings import BatchingSettings, GenerationSettings, ModelSettings

__all__ = ["DecodeEngine", "GenerationEngine", "build_engine"]


def core_share_for(model: ModelSettings, device: str) -> CoreShare | None:
    """Threads that follow the load (engine.core_share) for a CPU model whose threads are not
    fixed by `model.torch_threads`."""
    if not model.adaptive_threads or model.torch_threads or device != "cpu":
        return None
    import torch

    cores = model.shared_cores or len(os.sched_getaffinity(0))
    return CoreShare(cores, torch.set_num_threads)


def build_engine(
    model: ModelSettings,
    generation: GenerationSettings,
    batching: BatchingSettings,
    *,
    on_load: Callable[[EngineLoad], None] | None = None,
) -> GenerationEngine:
    """The engine `model.engine` names, with its model loaded; `on_load` hears what it holds
    (rows running and waiting, KV-cache bytes) while it decodes."""
    if model.engine == "torch":
        generator = TextGenerator(load_model(model), generation, model)
        return DecodeEngine(
            generator,
            batching.max_batch_size,
            continuous=batching.continuous,
            core_share=core_share_for(model, generator.loaded.device),
            on_load=on_load,
        )
    raise ValueError(f"unknown engine {model.engine!r}")
