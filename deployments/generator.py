"""TextGenerator: one padded `generate` call for a batch of chat prompts.

Each row samples with its own seeded random generator, token budget and minimum length, so a
request's output does not depend on what it happened to be batched with, and a short title in
the same batch as a long body stops early instead of padding along.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers import StoppingCriteriaList as _StoppingCriteriaList

from deployments.model_loader import LoadedModel
from deployments.schemas import GenerationJob, GenerationResult
from deployments.settings import GenerationSettings, ModelSettings

logger = logging.getLogger(__name__)

CancelCheck = Callable[[int], bool]


class PerRowSampler(LogitsProcessor):
    """Samples each row with its own generator and returns a one-hot choice.

    Generation runs with `do_sample=False`; picking the arg-max of a one-hot row is the sampled
    token, so sampling stays under our control (per-row seeds) while `generate` keeps its KV
    cache, padding and stopping logic.
    """

    def __init__(
        self,
        *,
        seeds: Sequence[int],
        min_new_tokens: Sequence[int],
        prompt_length: int,
        eos_token_ids: Sequence[int],
        settings: GenerationSettings,
        device: str,
    ) -> None:
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.min_new_tokens = list(min_new_tokens)
        self.prompt_length = prompt_length
        self.eos_token_ids = list(eos_token_ids)
        self.settings = settings

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        produced = input_ids.shape[1] - self.prompt_length
        logits = scores.float()
        too_short = [row for row, least in enumerate(self.min_new_tokens) if produced < least]
        if too_short and self.eos_token_ids:
            logits = logits.clone()
            rows = torch.tensor(too_short, device=logits.device)[:, None]
            logits[rows, torch.tensor(self.eos_token_ids, device=logits.device)] = float("-inf")
        chosen = self._choose(logits)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.unsqueeze(1), 0.0)
        return out

    def _choose(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperature, top-k and top-p for all rows at once, then one seeded draw per row."""
        settings = self.settings
        if settings.temperature == 0:
            return logits.argmax(-1)
        logits = logits / settings.temperature
        k = settings.top_k if 0 < settings.top_k < logits.shape[-1] else logits.shape[-1]
        top_logits, top_ids = torch.topk(logits, k, dim=-1)  # sorted, highest first
        probs = top_logits.softmax(-1)
        if settings.top_p < 1:
            # Keep the smallest prefix whose mass reaches top_p (always the first token).
            probs = probs.masked_fill(probs.cumsum(-1) - probs > settings.top_p, 0.0)
        draws = [
            torch.multinomial(probs[row], 1, generator=generator)
            for row, generator in enumerate(self.generators)
        ]
        return top_ids.gather(1, torch.stack(draws)).squeeze(1)


class PerRowBudget(StoppingCriteria):
    """Stops each row at its own token budget, or when its caller has gone away."""

    def __init__(
        self, max_new_tokens: Sequence[int], prompt_length: int, cancelled: CancelCheck | None
    ) -> None:
        self.max_new_tokens = torch.tensor(max_new_tokens)
        self.prompt_length = prompt_length
        self.cancelled = cancelled

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: Any) -> Any:
        produced = input_ids.shape[1] - self.prompt_length
        done = (self.max_new_tokens <= produced).to(input_ids.device)
        if self.cancelled is not None:
            gone = [self.cancelled(row) for row in range(input_ids.shape[0])]
            done = done | torch.tensor(gone, device=input_ids.device)
        return done


class TextGenerator:
    """Plain class behind the three model deployments; tests drive it without Ray."""

    def __init__(
        self,
        loaded: LoadedModel,
        generation: GenerationSettings,
        model_settings: ModelSettings | None = None,
    ) -> None:
        self.loaded = loaded
        self.generation = generation
        self.max_input_tokens = model_settings.max_input_tokens if model_settings else 512
        tokenizer = loaded.tokenizer
        eos = loaded.model.generation_config.eos_token_id or tokenizer.eos_token_id
        self.eos_token_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_token_id = tokenizer.pad_token_id
        self._share_prefixes = True

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    def render(self, job: GenerationJob) -> str:
        tokenizer = self.loaded.tokenizer
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                job.messages, add_generation_prompt=True, tokenize=False
            )
        # Base models without a chat template get the messages as plain text.
        return "\n\n".join(m["content"] for m in job.messages) + "\n\n"

    def generate_batch(
        self, jobs: Sequence[GenerationJob], cancelled: CancelCheck | None = None
    ) -> list[GenerationResult | Exception]:
        """Generate every job in one padded call; a job that cannot be rendered fails alone."""
        started = time.perf_counter()
        results: list[GenerationResult | Exception] = [RuntimeError("not generated")] * len(jobs)
        prompts: list[str] = []
        rows: list[int] = []
        for index, job in enumerate(jobs):
            try:
                prompts.append(self.render(job))
                rows.append(index)
            except Exception as exc:
                logger.warning("job %d could not be rendered: %s", index, exc)
                results[index] = exc
        if not rows:
            return results

        texts, counts = self._generate([jobs[i] for i in rows], prompts, cancelled, rows)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for row, text, count in zip(rows, texts, counts):
            results[row] = GenerationResult(
                text=text, new_tokens=count, elapsed_ms=elapsed_ms, batch_size=len(rows)
            )
        return results

    @torch.inference_mode()
    def _generate(
        self,
        jobs: Sequence[GenerationJob],
        prompts: Sequence[str],
        cancelled: CancelCheck | None,
        rows: Sequence[int],
    ) -> tuple[list[str], list[int]]:
        loaded = self.loaded
        token_ids: list[list[int]] = loaded.tokenizer(
            list(prompts),
            truncation=True,
            max_length=self.max_input_tokens,
            add_special_tokens=False,
        )["input_ids"]
        shared = shared_prefix_length(token_ids)
        least = self.generation.shared_prefix_min_tokens
        if least == 0 or len(token_ids) < 2 or shared < least:
            shared = 0
        cache = self._prefill_shared(token_ids[0][:shared], len(jobs)) if shared else None
        if cache is None:
            shared = 0
        encoded = self._pad(token_ids, shared)
        if cache is not None:
            encoded["past_key_values"] = cache
        prompt_length = int(encoded["input_ids"].shape[1])
        max_new = [job.max_new_tokens for job in jobs]
        row_cancelled = (lambda r: cancelled(rows[r])) if cancelled else None
        sampler = PerRowSampler(
            seeds=[job.seed for job in jobs],
            min_new_tokens=[job.min_new_tokens for job in jobs],
            prompt_length=prompt_length,
            eos_token_ids=self.eos_token_ids,
            settings=self.generation,
            device=loaded.device,
        )
        output = loaded.model.generate(
            **encoded,
            max_new_tokens=max(max_new),
            do_sample=False,
            repetition_penalty=self.generation.repetition_penalty,
            no_repeat_ngram_size=self.generation.no_repeat_ngram_size or None,
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=_StoppingCriteriaList(
                [PerRowBudget(max_new, prompt_length, row_cancelled)]
            ),
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_ids or None,
        )
        texts, counts = [], []
        for row, job in enumerate(jobs):
            new_tokens = output[row, prompt_length : prompt_length + job.max_new_tokens].tolist()
            for position, token in enumerate(new_tokens):
                if token in self.eos_token_ids:
                    new_tokens = new_tokens[:position]
                    break
            texts.append(loaded.tokenizer.decode(new_tokens, skip_special_tokens=True))
            counts.append(len(new_tokens))
        return texts, counts

    def _pad(self, token_ids: Sequence[Sequence[int]], shared: int) -> dict[str, Any]:
        """Rows as [shared prefix][padding][the row's own tokens]: left padding when `shared` is
        0. The mask hides the padding and `generate` derives positions from the mask, so every
        row sees the same positions as it would alone."""
        own = [list(ids[shared:]) for ids in token_ids]
        width = max(len(ids) for ids in own)
        prefix = list(token_ids[0][:shared])
        pad = self.pad_token_id if self.pad_token_id is not None else 0
        input_ids = [prefix + [pad] * (width - len(ids)) + ids for ids in own]
        mask = [[1] * shared + [0] * (width - len(ids)) + [1] * len(ids) for ids in own]
        device = self.loaded.device
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long, device=device),
            "attention_mask": torch.tensor(mask, dtype=torch.long, device=device),
        }

    def _prefill_shared(self, prefix: Sequence[int], batch_size: int) -> Any | None:
        """The KV cache of the shared prefix, computed once and repeated for every row, so that
        `generate` only prefills what differs; None where the model cannot do it."""
        if not self._share_prefixes:
            return None
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.loaded.device)
        try:
            cache = self.loaded.model(input_ids=ids, use_cache=True).past_key_values
            cache.batch_repeat_interleave(batch_size)
        except Exception as exc:  # a model whose cache cannot be shared this way
            logger.warning("shared-prefix prefill not supported by this model, off: %r", exc)
            self._share_prefixes = False
            return None
        return cache


def shared_prefix_length(token_ids: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all rows share, leaving every row at least one token of its own
    (`generate` needs one uncached token per row to start from)."""
    if not token_ids:
        return 0
    limit = min(len(ids) for ids in token_ids) - 1
    first = token_ids[0]
    length = 0
    while length < limit and all(ids[length] == first[length] for ids in token_ids):
        length += 1
    return length
