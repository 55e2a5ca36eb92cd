"""Decode steps of the default engine, for py-spy: `py-spy record -f raw -o OUT -- python
spy_step.py ROWS [quantization]` (one torch thread, ROWS rows of content prompts)."""

import sys

import torch

from benchmarks.decode_profile import _jobs, _settings
from deployments.engine.generator import DecodeBatch, PendingRow, TextGenerator
from deployments.engine.model_loader import load_model

rows = int(sys.argv[1])
overrides = [f"model.quantization={sys.argv[2]}"] if len(sys.argv) > 2 else []
torch.set_num_threads(1)
settings = _settings(overrides)
generator = TextGenerator(load_model(settings.model), settings.generation, settings.model)
batch = DecodeBatch(generator)
batch.admit([PendingRow(job=job, deliver=lambda _: None) for job in _jobs(rows, 400)])
for _ in range(300 if rows == 1 else 60):
    batch.step()
