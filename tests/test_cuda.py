"""The engine on a GPU with its defaults there: `device: auto` picks CUDA and bfloat16 (and
torch's attention without cuDNN), rows decode in one batch with their KV cache on the GPU, and
`gpu_memory_fraction` caps the process.

Runs only where torch sees a GPU (CI has none; the lent GPU machine runs it, see
docs/development.md). tests/test_generator.py runs the whole engine suite on CUDA too, in
float32, where texts are compared token for token.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from deployments.engine.generator import DecodeBatch, PendingRow, TextGenerator
from deployments.engine.model_loader import load_model
from deployments.schemas import GenerationResult
from deployments.settings import GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION
from tests.test_generator import _job

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> TextGenerator:
    settings = ModelSettings(model=str(tiny_model_dir))  # device and dtype: auto
    return TextGenerator(load_model(settings), GenerationSettings(**TINY_GENERATION), settings)


def test_auto_picks_the_gpu_and_bfloat16(generator: TextGenerator) -> None:
    loaded = generator.loaded
    assert (loaded.device, loaded.dtype, loaded.quantization) == ("cuda", "bfloat16", "none")
    assert {p.device.type for p in loaded.model.parameters()} == {"cuda"}
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    # cuDNN's attention rebuilds its graph at every decode step (model.cudnn_attention)
    assert not torch.backends.cuda.cudnn_sdp_enabled()


def test_rows_decode_together_with_their_cache_on_the_gpu(generator: TextGenerator) -> None:
    results: list[GenerationResult | Exception] = []
    batch = DecodeBatch(generator)
    budgets = [5, 9, 14, 20]
    jobs = [_job(i, max_new=n, min_new=n) for i, n in enumerate(budgets)]
    batch.admit([PendingRow(job, deliver=results.append) for job in jobs])
    assert batch.cache is not None and batch.mask.device.type == "cuda"
    keys = batch.cache.layers[0].keys
    assert keys is not None and keys.device.type == "cuda" and keys.dtype == torch.bfloat16
    assert batch.kv_bytes() > 0
    while batch.rows:
        batch.step()
    assert sorted(r.new_tokens for r in results if isinstance(r, GenerationResult)) == budgets
    assert max(r.batch_size for r in results if isinstance(r, GenerationResult)) > 1


def test_gpu_memory_fraction_caps_the_process(tiny_model_dir: Path) -> None:
    # The cap is process-wide, so it is set in a process of its own.
    script = textwrap.dedent(
        f"""
        import torch
        from deployments.engine.model_loader import load_model
        from deployments.settings import ModelSettings

        load_model(ModelSettings(model={str(tiny_model_dir)!r}, gpu_memory_fraction=0.05))
        total = torch.cuda.get_device_properties(0).total_memory
        small = torch.empty(int(total * 0.01), dtype=torch.uint8, device="cuda")
        try:
            torch.empty(int(total * 0.10), dtype=torch.uint8, device="cuda")
        except torch.OutOfMemoryError:
            print("capped")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "capped"
