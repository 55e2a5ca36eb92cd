"""TextGenerator and DecodeBatch: a decode loop of our own, in which rows join and leave a
running batch between steps (continuous batching).

Why not `model.generate`: it decodes a fixed batch until its longest row ends, so a row that has
finished keeps decoding and a new request waits for the whole batch. Here each prompt is prefilled
on its own (no padding, so its numbers never depend on its neighbours), joins the running batch at
the next step, and leaves it the step it ends. Prompt tokens shared with an earlier prompt (the
system prompt and instructions) are not prefilled again: their keys and values are kept and reused.

Each row samples with its own seeded generator and budget (deployments.engine.sampling), so a
request's text does not depend on which requests it happened to decode with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from deployments.engine.kv_cache import cache_of_layers, is_mergeable, merge_caches, slot_cache
from deployments.engine.model_loader import LoadedModel
from deployments.engine.prompt_tokens import prompt_token_ids
from deployments.engine.sampling import RowState, choose_tokens, new_row_state
from deployments.schemas import GenerationJob, GenerationResult
from deployments.settings import GenerationSettings, ModelSettings

logger = logging.getLogger(__name__)

CancelCheck = Callable[[int], bool]
Delivery = Callable[[GenerationResult | Exception], None]
# Called from the decoding thread with each piece of new text; the pieces add up to the text of
# the row's result (streaming).
TextSink = Callable[[str], None]


class RowCancelled(Exception):
    """The caller went away; the row stopped decoding."""


@dataclass
class PendingRow:
    """A job waiting to join a batch, and where its result goes."""

    job: GenerationJob
    deliver: Delivery
    cancelled: Callable[[], bool] = lambda: False
    submitted: float = field(default_factory=time.perf_counter)
    on_text: TextSink | None = None


@dataclass
class ActiveRow:
    pending: PendingRow
    state: RowState
    next_token: int  # sampled, not yet fed to the model
    position: int  # the position id `next_token` is fed at
    steps: int = 0
    rows_sum: int = 0  # batch sizes summed over the row's steps: its mean batch
    streamed: IncrementalText | None = None  # a streaming row's text sent so far
    queue_ms: float = 0.0  # from submitted to its prefill starting
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0  # from submitted to its first token sampled


class IncrementalText:
    """A row's text piece by piece as its tokens come: each token decodes only the few tokens
    around it, and a piece ending in half a character (a byte-level token that is not a whole
    UTF-8 character yet) waits for the token that completes it. The pieces add up to the
    decode of every token (the approach of TGI's and vLLM's detokenizers)."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer
        self.prefix_offset = 0  # tokens before this are sent and no longer decoded
        self.read_offset = 0  # tokens before this are sent

    def piece(self, tokens: Sequence[int]) -> str:
        """The new text `tokens` (every token so far) adds to what was sent; may be empty."""
        decode = self.tokenizer.decode  # type: ignore[attr-defined]
        sent = decode(tokens[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        text = decode(tokens[self.prefix_offset :], skip_special_tokens=True)
        if len(text) <= len(sent) or text.endswith("\ufffd"):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(tokens)
        return text[len(sent) :]

    def rest(self, tokens: Sequence[int], full_text: str) -> str:
        """What is left to send once the row has ended, its full text known."""
        decode = self.tokenizer.decode  # type: ignore[attr-defined]
        sent = decode(tokens[: self.read_offset], skip_special_tokens=True)
        return full_text[len(sent) :] if full_text.startswith(sent) else ""


@dataclass
class PrefixMemory:
    """The keys and values of an earlier prompt, reusable for any prompt that starts the same."""

    tokens: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]]


class TextGenerator:
    """Plain class behind the three model deployments: renders, prefills and decodes. Tests drive
    it without Ray; the deployments run its batches in a DecodeEngine thread."""

    def __init__(
        self,
        loaded: LoadedModel,
        generation: GenerationSettings,
        model_settings: ModelSettings | None = None,
    ) -> None:
        self.loaded = loaded
        self.generation = generation
        self.max_input_tokens = model_settings.max_input_tokens if model_settings else 512
        self.eos_token_ids = eos_token_ids(loaded)
        # Rows can only join a running batch when the model's KV cache is made of plain layers;
        # other models (sliding windows, hybrids) decode one row at a time.
        self.mergeable = slot_cache(loaded.model) is not None
        if not self.mergeable:
            logger.warning(
                "%s: this model's KV cache cannot be merged; rows decode one at a time",
                loaded.model_id,
            )
        self.memory: PrefixMemory | None = None
        self.prefilled_tokens = 0  # prompt tokens run through the model (reused ones not counted)
        self.generated_tokens = 0  # tokens of the rows that ended (the benchmarks' token counter)

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    def tokenize(self, job: GenerationJob) -> list[int]:
        """The job's prompt: user text never becomes a control token, and over
        `max_input_tokens` the user's text is cut, never the template (prompt_tokens)."""
        return prompt_token_ids(
            self.loaded.tokenizer, job.messages, job.user_text, self.max_input_tokens
        )

    def generate_batch(
        self, jobs: Sequence[GenerationJob], cancelled: CancelCheck | None = None
    ) -> list[GenerationResult | Exception]:
        """Every job decoded in one batch, to the end; a job that fails fails alone."""
        results: list[GenerationResult | Exception] = [RuntimeError("not generated")] * len(jobs)

        def slot(index: int) -> Delivery:
            def deliver(result: GenerationResult | Exception) -> None:
                results[index] = result

            return deliver

        waiting = [
            PendingRow(
                job=job,
                deliver=slot(index),
                cancelled=(lambda i=index: cancelled(i)) if cancelled else (lambda: False),
            )
            for index, job in enumerate(jobs)
        ]
        batch = DecodeBatch(self)
        while waiting or batch.rows:
            room = batch.room(len(jobs))
            batch.admit(waiting[:room])
            del waiting[:room]
            batch.step()
        return results

    @torch.inference_mode()
    def prefill(self, prompt: Sequence[int]) -> tuple[DynamicCache, torch.Tensor]:
        """One prompt through the model: its KV cache and the logits of its next token. Leading
        tokens that an earlier prompt shared are taken from that prompt's cache instead."""
        model = self.loaded.model
        reused = self._reusable_prefix(prompt)
        if reused:
            assert self.memory is not None
            cache = cache_of_layers(
                [(k[:, :, :reused], v[:, :, :reused]) for k, v in self.memory.layers]
            )
        elif self.mergeable:
            cache = slot_cache(model)
        else:
            cache = DynamicCache(config=model.config)
        device = self.loaded.device
        ids = torch.tensor([list(prompt[reused:])], dtype=torch.long, device=device)
        positions = torch.arange(reused, len(prompt), device=device)[None]
        output = model(
            input_ids=ids,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.prefilled_tokens += len(prompt) - reused
        if not reused and self._remembers_prefixes:
            self.memory = PrefixMemory(
                tuple(prompt), [(layer.keys, layer.values) for layer in cache.layers]
            )
        return cache, output.logits[0, -1]

    @property
    def _remembers_prefixes(self) -> bool:
        return self.mergeable and self.generation.shared_prefix_min_tokens > 0

    def _reusable_prefix(self, prompt: Sequence[int]) -> int:
        if not self._remembers_prefixes or self.memory is None:
            return 0
        # At least one token of the prompt is run, for the logits of the next one.
        shared = common_prefix_length(self.memory.tokens, prompt, limit=len(prompt) - 1)
        return shared if shared >= self.generation.shared_prefix_min_tokens else 0


class DecodeBatch:
    """The rows decoding together: their KV cache (right-aligned), attention mask and sampling
    state. `admit` prefills newcomers and merges them in; `step` decodes one token for every row
    and lets the rows that ended leave."""

    def __init__(self, generator: TextGenerator) -> None:
        self.generator = generator
        self.rows: list[ActiveRow] = []
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=generator.loaded.device)
        self.seen: torch.Tensor | None = None  # (rows, vocab): tokens each row has seen

    def kv_bytes(self) -> int:
        """Bytes the batch's KV cache holds (its buffers, free columns included)."""
        if self.cache is None:
            return 0
        return sum(layer_bytes(layer) for layer in self.cache.layers)

    def room(self, max_rows: int) -> int:
        """How many rows may join now."""
        if not self.generator.mergeable:
            return 0 if self.rows else 1
        return max(0, max_rows - len(self.rows))

    @torch.inference_mode()
    def admit(self, pending: Sequence[PendingRow]) -> None:
        generator = self.generator
        joining: list[tuple[ActiveRow, DynamicCache, torch.Tensor]] = []
        for row in pending:
            if row.cancelled():
                row.deliver(RowCancelled())
                continue
            started = time.perf_counter()
            try:
                prompt = generator.tokenize(row.job)
                cache, logits = generator.prefill(prompt)
            except Exception as exc:
                logger.warning("a job could not be prefilled: %r", exc)
                row.deliver(exc)
                continue
            job = row.job
            state = new_row_state(
                prompt,
                max_new=job.max_new_tokens,
                min_new=min(job.min_new_tokens, job.max_new_tokens),
                seed=job.seed,
                ngram_size=generator.generation.no_repeat_ngram_size,
                device=generator.loaded.device,
            )
            seen = torch.zeros((1, logits.shape[-1]), dtype=torch.bool, device=logits.device)
            if generator.generation.penalize_prompt_tokens:
                seen[0, prompt] = True
            active = ActiveRow(row, state, next_token=-1, position=len(prompt))
            active.queue_ms = (started - row.submitted) * 1000
            active.prefill_ms = (time.perf_counter() - started) * 1000
            if row.on_text is not None:
                active.streamed = IncrementalText(generator.loaded.tokenizer)
            first = self._choose(logits[None], [state], seen)[0]
            active.first_token_ms = (time.perf_counter() - row.submitted) * 1000
            if self._take(active, first, seen[0]):
                joining.append((active, cache, seen))
        if joining:
            self._merge(joining)

    def _merge(self, joining: Sequence[tuple[ActiveRow, DynamicCache, torch.Tensor]]) -> None:
        caches = [cache for _, cache, _ in joining]
        if self.cache is not None:
            caches.insert(0, self.cache)
        self.cache = merge_caches(caches) if is_mergeable(caches[0]) else caches[0]
        width = self.cache.get_seq_length()
        masks = [] if not self.rows else [_left_pad(self.mask, width)]
        for _, cache, _ in joining:
            length = cache.get_seq_length()
            masks.append(_left_pad(self.mask.new_ones((1, length)), width))
        self.mask = torch.cat(masks)
        seen = [seen for _, _, seen in joining]
        self.seen = torch.cat(seen if self.seen is None else [self.seen, *seen])
        self.rows.extend(row for row, _, _ in joining)

    @torch.inference_mode()
    def step(self) -> None:
        """One token for every row; rows that ended (or whose caller left) leave the batch."""
        if not self.rows:
            return
        assert self.cache is not None and self.seen is not None
        device = self.generator.loaded.device
        count = len(self.rows)
        ids = torch.tensor([[row.next_token] for row in self.rows], device=device)
        positions = torch.tensor([[row.position] for row in self.rows], device=device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((count, 1))], dim=1)
        output = self.generator.loaded.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        tokens = self._choose(output.logits[:, -1], [row.state for row in self.rows], self.seen)
        keep = []
        for index, (row, token) in enumerate(zip(self.rows, tokens)):
            row.steps += 1
            row.rows_sum += count
            row.position += 1
            if row.pending.cancelled():
                row.pending.deliver(RowCancelled())
            elif self._take(row, token, self.seen[index]):
                keep.append(index)
        if len(keep) < count:
            self._keep(keep)

    def _choose(
        self, logits: torch.Tensor, states: Sequence[RowState], seen: torch.Tensor
    ) -> list[int]:
        generator = self.generator
        return choose_tokens(logits, states, seen, generator.eos_token_ids, generator.generation)

    def _take(self, row: ActiveRow, token: int, seen: torch.Tensor) -> bool:
        """Record the row's new token; False (and the result delivered) when the row ended."""
        state = row.state
        if token in self.generator.eos_token_ids:
            self._finish(row)
            return False
        state.append(token)
        seen[token] = True
        row.next_token = token
        if len(state.produced) >= state.max_new_tokens:
            self._finish(row)
            return False
        if row.streamed is not None:
            self._send(row, row.streamed.piece(state.produced))
        return True

    @staticmethod
    def _send(row: ActiveRow, piece: str) -> None:
        if not piece or row.pending.on_text is None:
            return
        try:
            row.pending.on_text(piece)
        except Exception:  # a listener's failure is no reason to fail the row
            logger.exception("a streaming row's text listener failed")

    def _finish(self, row: ActiveRow) -> None:
        produced = row.state.produced
        self.generator.generated_tokens += len(produced)
        text = self.generator.loaded.tokenizer.decode(produced, skip_special_tokens=True)
        if row.streamed is not None:
            self._send(row, row.streamed.rest(produced, text))
        row.pending.deliver(
            GenerationResult(
                text=text,
                new_tokens=len(produced),
                elapsed_ms=(time.perf_counter() - row.pending.submitted) * 1000,
                batch_size=round(row.rows_sum / row.steps) if row.steps else 1,
                queue_ms=row.queue_ms,
                prefill_ms=row.prefill_ms,
                first_token_ms=row.first_token_ms,
                prompt_tokens=row.state.prompt_tokens,
            )
        )

    def _keep(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache, self.seen = None, None
            self.mask = self.mask[:0, :0]
            return
        assert self.cache is not None and self.seen is not None
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.seen = self.mask[index], self.seen[index]
        # Columns no remaining row uses (the left padding of rows that left) are dropped.
        unused = int(self.mask.any(dim=0).int().argmax())
        if unused and is_mergeable(self.cache):
            for layer in self.cache.layers:
                layer.drop_left(unused)  # type: ignore[attr-defined]
            self.mask = self.mask[:, unused:]


def layer_bytes(layer: object) -> int:
    tensors = [getattr(layer, name, None) for name in ("_key_buffer", "_value_buffer")]
    if tensors[0] is None:
        tensors = [getattr(layer, "keys", None), getattr(layer, "values", None)]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def eos_token_ids(loaded: LoadedModel) -> list[int]:
    """The tokens that end a model's answer (its generation config's, else the tokenizer's)."""
    eos = loaded.model.generation_config.eos_token_id or loaded.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or [])


def _left_pad(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(mask, (width - mask.shape[1], 0))


def common_prefix_length(a: Sequence[int], b: Sequence[int], limit: int | None = None) -> int:
    """How many leading tokens `a` and `b` share (at most `limit`)."""
    bound = min(len(a), len(b)) if limit is None else min(len(a), len(b), max(limit, 0))
    length = 0
    while length < bound and a[length] == b[length]:
        length += 1
    return length
