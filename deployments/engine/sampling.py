"""Choosing each row's next token: penalties, bans, then a seeded draw per row.

Every row carries its own random generator, n-gram table and budget, so a request's output does not
depend on which other requests share its batch, and rows can join or leave the batch at any step.
The processing order is transformers' own: repetition penalty, no-repeat n-grams, the minimum
length (end-of-text held back), then temperature, top-k and top-p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from deployments.settings import GenerationSettings


@dataclass
class RowState:
    """One row's sampling state: what it has produced and what it may not produce next."""

    generator: torch.Generator
    min_new_tokens: int
    max_new_tokens: int
    ngram_size: int
    history: list[int]
    produced: list[int] = field(default_factory=list)
    # (n-1)-gram -> tokens that would repeat an n-gram already in the prompt or the output.
    ngrams: dict[tuple[int, ...], list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = self.ngram_size
        if size:
            for end in range(size, len(self.history) + 1):
                self._remember(self.history[end - size : end])

    def _remember(self, gram: Sequence[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), []).append(gram[-1])

    def banned(self) -> list[int]:
        size = self.ngram_size
        if not size or len(self.history) < size - 1:
            return []
        return self.ngrams.get(tuple(self.history[len(self.history) - size + 1 :]), [])

    @property
    def prompt_tokens(self) -> int:
        """How many tokens of `history` are the prompt's (the rest were produced)."""
        return len(self.history) - len(self.produced)

    def append(self, token: int) -> None:
        self.produced.append(token)
        self.history.append(token)
        if self.ngram_size and len(self.history) >= self.ngram_size:
            self._remember(self.history[-self.ngram_size :])


def new_row_state(
    prompt: Sequence[int], max_new: int, min_new: int, seed: int, ngram_size: int, device: str
) -> RowState:
    return RowState(
        generator=torch.Generator(device=device).manual_seed(seed),
        min_new_tokens=min_new,
        max_new_tokens=max_new,
        ngram_size=ngram_size,
        history=list(prompt),
    )


def choose_tokens(
    logits: torch.Tensor,
    rows: Sequence[RowState],
    seen: torch.Tensor,
    eos_token_ids: Sequence[int],
    settings: GenerationSettings,
) -> list[int]:
    """One token per row from `logits` (rows, vocab); `seen` marks each row's prompt and output
    tokens (rows, vocab) for the repetition penalty."""
    logits = logits.float()
    penalty = settings.repetition_penalty
    if penalty != 1:
        penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(seen, penalized, logits)
    for index, row in enumerate(rows):
        banned = row.banned()
        if banned:
            logits[index, banned] = float("-inf")
        if eos_token_ids and len(row.produced) < row.min_new_tokens:
            logits[index, list(eos_token_ids)] = float("-inf")
    return draw(logits, [row.generator for row in rows], settings)


def draw(
    logits: torch.Tensor, generators: Sequence[torch.Generator], settings: GenerationSettings
) -> list[int]:
    """Temperature, top-k and top-p for all rows at once, then one seeded draw per row."""
    if settings.temperature == 0:
        return logits.argmax(-1).tolist()
    logits = logits / settings.temperature
    k = settings.top_k if 0 < settings.top_k < logits.shape[-1] else logits.shape[-1]
    top_logits, top_ids = torch.topk(logits, k, dim=-1)  # sorted, highest first
    probs = top_logits.softmax(-1)
    if settings.top_p < 1:
        # Keep the smallest prefix whose mass reaches top_p (always the first token).
        probs = probs.masked_fill(probs.cumsum(-1) - probs > settings.top_p, 0.0)
    draws = [
        torch.multinomial(probs[row], 1, generator=generator)
        for row, generator in enumerate(generators)
    ]
    return top_ids.gather(1, torch.stack(draws)).squeeze(1).tolist()


def generate_penalty_kwargs(settings: GenerationSettings, prompt_length: int) -> dict[str, Any]:
    """The same repetition penalty for transformers' `generate` (the benchmark baseline and the
    tests compare against it): `repetition_penalty` covers the prompt too, so with
    `penalize_prompt_tokens` off it goes in as a processor that skips the prompt's tokens."""
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    penalty = settings.repetition_penalty
    if settings.penalize_prompt_tokens or penalty == 1:
        return {"repetition_penalty": penalty}
    processor = RepetitionPenaltyLogitsProcessor(float(penalty), prompt_ignore_length=prompt_length)
    return {"logits_processor": LogitsProcessorList([processor])}
