"""TextGenerator on a tiny real model: batching, per-row budgets and seeds, failures, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deployments.engine.generator import (
    DecodeBatch,
    PendingRow,
    RowCancelled,
    TextGenerator,
    common_prefix_length,
)
from deployments.engine.model_loader import load_model, pick_dtype
from deployments.engine.sampling import (
    RowState,
    choose_tokens,
    generate_penalty_kwargs,
    new_row_state,
)
from deployments.post.prompts import build_job
from deployments.schemas import GenerationJob, GenerationResult, PostRequest
from deployments.settings import GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION

# Every test of the engine runs on the CPU, and on CUDA where torch sees a GPU (the lent GPU
# machine; CI has none). float32 on both: these tests compare texts token for token
# (tests/test_cuda.py covers bfloat16, the GPU's default).
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


@pytest.fixture(scope="module", params=DEVICES)
def generator(request: pytest.FixtureRequest, tiny_model_dir: Path) -> TextGenerator:
    model_settings = ModelSettings(model=str(tiny_model_dir), device=request.param, dtype="float32")
    return TextGenerator(
        load_model(model_settings), GenerationSettings(**TINY_GENERATION), model_settings
    )


def _job(
    seed: int, max_new: int = 12, min_new: int = 0, topic: str = "Code review"
) -> GenerationJob:
    job = build_job("content", PostRequest(topic=topic), seed, GenerationSettings())
    return job.model_copy(update={"max_new_tokens": max_new, "min_new_tokens": min_new})


def _ok(result: GenerationResult | Exception) -> GenerationResult:
    assert isinstance(result, GenerationResult), result
    return result


def test_loads_local_folder_on_its_device(generator: TextGenerator, tiny_model_dir: Path) -> None:
    device = generator.loaded.device
    assert next(generator.loaded.model.parameters()).device.type == device
    assert generator.loaded.dtype == "float32"
    if device == "cpu":
        assert pick_dtype("auto", "cpu") is torch.float32
    assert generator.model_id == str(tiny_model_dir)
    assert generator.loaded.tokenizer.padding_side == "left"


def test_one_result_per_job_within_each_rows_budget(generator: TextGenerator) -> None:
    results = generator.generate_batch([_job(1, max_new=3), _job(2, max_new=20), _job(3, 9)])
    counts = [_ok(r).new_tokens for r in results]
    assert counts[0] <= 3 and counts[1] <= 20 and counts[2] <= 9
    assert counts[1] > 3, "a short row must not cut the longer rows of its batch"
    # batch_size: the rows decoding alongside, averaged over the row's steps; the short rows
    # leave, so the longest row ends up decoding alone.
    sizes = [_ok(r).batch_size for r in results]
    assert sizes[0] == 3 and sizes[1] < 3


def test_generated_tokens_counts_every_ended_rows_tokens(generator: TextGenerator) -> None:
    before = generator.generated_tokens
    results = generator.generate_batch([_job(4, max_new=5), _job(5, max_new=11)])
    assert generator.generated_tokens - before == sum(_ok(r).new_tokens for r in results) > 0


def test_same_seed_same_text_whatever_the_batch(generator: TextGenerator) -> None:
    alone = _ok(generator.generate_batch([_job(7)])[0]).text
    batched = generator.generate_batch([_job(99, topic="Something else entirely"), _job(7)])
    assert _ok(batched[1]).text == alone
    assert _ok(generator.generate_batch([_job(8)])[0]).text != alone


def test_common_prefix_length() -> None:
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix_length([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix_length([1, 2, 3], [1, 2, 3], limit=2) == 2
    assert common_prefix_length([5, 1], [6, 1]) == 0


@pytest.mark.parametrize("penalize_prompt", [True, False])
def test_greedy_decoding_matches_transformers_generate(
    generator: TextGenerator, penalize_prompt: bool
) -> None:
    """The decode loop of our own against `generate` with the same penalties, greedy; the
    penalty strong enough that covering the prompt or not changes the text."""
    settings = generator.generation.model_copy(
        update={
            "temperature": 0.0,
            "repetition_penalty": 1.5,
            "penalize_prompt_tokens": penalize_prompt,
        }
    )
    ours = TextGenerator(generator.loaded, settings)
    for seed, topic in ((1, "Code review"), (2, "Hiring juniors well")):
        job = _job(seed, max_new=24, min_new=4, topic=topic)
        prompt = ours.tokenize(job)
        device = generator.loaded.device
        output = generator.loaded.model.generate(
            torch.tensor([prompt], device=device),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long, device=device),
            do_sample=False,
            max_new_tokens=24,
            min_new_tokens=4,
            **generate_penalty_kwargs(settings, len(prompt)),
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            eos_token_id=ours.eos_token_ids,
            pad_token_id=generator.loaded.tokenizer.pad_token_id,
        )[0, len(prompt) :].tolist()
        expected = [t for t in output if t not in ours.eos_token_ids]
        result = _ok(ours.generate_batch([job])[0])
        assert result.new_tokens == len(expected)
        assert result.text == generator.loaded.tokenizer.decode(expected, skip_special_tokens=True)


def _decode_alone(generator: TextGenerator, job: GenerationJob) -> str:
    return _ok(generator.generate_batch([job])[0]).text


def test_a_row_joining_a_running_batch_gets_the_text_it_gets_alone(
    generator: TextGenerator,
) -> None:
    first, second, third = _job(51, max_new=30), _job(52, max_new=12), _job(53, max_new=20)
    results: dict[str, GenerationResult | Exception] = {}

    def pending(name: str, job: GenerationJob) -> PendingRow:
        return PendingRow(job=job, deliver=lambda r: results.__setitem__(name, r))

    batch = DecodeBatch(generator)
    batch.admit([pending("first", first)])
    for _ in range(5):
        batch.step()
    batch.admit([pending("second", second), pending("third", third)])
    sizes = []
    while batch.rows:
        sizes.append(len(batch.rows))
        width = batch.mask.shape[1]
        batch.step()
        # Only rows still decoding hold columns: the cache never outgrows its longest row.
        if batch.rows:
            assert batch.mask.shape[1] <= width + 1
            assert batch.mask[:, 0].any(), "columns no row uses are dropped"
    assert sizes[0] == 3 and sizes[-1] < 3, "rows that ended left the batch"
    for name, job in (("first", first), ("second", second), ("third", third)):
        assert _ok(results[name]).text == _decode_alone(generator, job), name


def test_shared_prompt_tokens_are_prefilled_once_and_change_no_token(
    generator: TextGenerator,
) -> None:
    jobs = [_job(21, topic="Code review"), _job(22, topic="Hiring juniors well"), _job(23)]
    texts, prefilled = {}, {}
    for least in (0, 16):
        settings = generator.generation.model_copy(update={"shared_prefix_min_tokens": least})
        fresh = TextGenerator(generator.loaded, settings)
        texts[least] = [_ok(r).text for r in fresh.generate_batch(jobs)]
        prefilled[least] = fresh.prefilled_tokens
    prompts = sum(len(generator.tokenize(job)) for job in jobs)
    assert prefilled[0] == prompts
    # The system prompt and instructions (dozens of tokens) are run for the first prompt only.
    assert prefilled[16] < prompts - 2 * 16
    assert texts[0] == texts[16]


def test_a_model_whose_cache_cannot_merge_decodes_one_row_at_a_time(
    generator: TextGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deployments.engine.generator as generator_module

    jobs = [_job(31, topic="Code review"), _job(32, topic="Hiring juniors well")]
    merged = [_ok(r).text for r in generator.generate_batch(jobs)]
    monkeypatch.setattr(generator_module, "slot_cache", lambda model: None)
    fallback = TextGenerator(generator.loaded, generator.generation)
    assert fallback.mergeable is False
    results = [_ok(r) for r in fallback.generate_batch(jobs)]
    assert [r.text for r in results] == merged
    assert {r.batch_size for r in results} == {1}


def test_a_job_that_fails_fails_alone(generator: TextGenerator) -> None:
    class Broken(TextGenerator):
        def tokenize(self, job: GenerationJob) -> list[int]:
            if "Unrenderable" in job.messages[-1]["content"]:
                raise ValueError("cannot render")
            return super().tokenize(job)

    broken = Broken(generator.loaded, generator.generation)
    results = broken.generate_batch([_job(12), _job(13, topic="Unrenderable"), _job(14)])
    assert isinstance(results[1], ValueError)
    assert _ok(results[0]).text and _ok(results[2]).text


def test_cancelled_row_stops_early(generator: TextGenerator) -> None:
    results = generator.generate_batch([_job(1, max_new=30), _job(2, max_new=30)], lambda r: r == 0)
    assert isinstance(results[0], RowCancelled), "a cancelled row is not decoded"
    assert _ok(results[1]).new_tokens > 5


@pytest.mark.parametrize("penalize_prompt", [True, False])
def test_repetition_penalty_covers_the_prompt_only_when_asked(
    generator: TextGenerator, penalize_prompt: bool
) -> None:
    generation = generator.generation.model_copy(update={"penalize_prompt_tokens": penalize_prompt})
    scoped = TextGenerator(generator.loaded, generation)
    job = _job(5, max_new=4)
    prompt = scoped.tokenize(job)
    batch = DecodeBatch(scoped)
    batch.admit([PendingRow(job, deliver=lambda result: None)])
    assert batch.seen is not None and len(batch.rows) == 1
    penalized = set(batch.seen[0].nonzero().flatten().tolist())
    written = set(batch.rows[0].state.produced)
    assert written and written <= penalized, "the tokens written so far are always penalized"
    if penalize_prompt:
        assert set(prompt) <= penalized
    else:
        assert penalized == written, "no prompt token is penalized"


def _state(min_new: int = 0, history: list[int] | None = None, ngram: int = 0) -> RowState:
    return new_row_state(history or [0], 50, min_new, seed=1, ngram_size=ngram, device="cpu")


def test_sampler_holds_back_eos_until_min_tokens() -> None:
    eos = 3
    rows = [_state(min_new=5), _state(min_new=0)]
    for row in rows:
        row.produced = [7, 8]
    logits = torch.full((2, 10), -10.0)
    logits[:, eos] = 10.0  # the model wants to stop right away
    seen = torch.zeros((2, 10), dtype=torch.bool)
    settings = GenerationSettings(temperature=0.7, top_k=0, top_p=1.0, repetition_penalty=1.0)
    chosen = choose_tokens(logits, rows, seen, [eos], settings)
    assert chosen[0] != eos, "row 0 has produced 2 of its 5 minimum tokens"
    assert chosen[1] == eos


def test_greedy_when_temperature_is_zero() -> None:
    settings = GenerationSettings(temperature=0, repetition_penalty=1.0)
    logits = torch.tensor([[0.1, 0.9, 0.5]])
    seen = torch.zeros((1, 3), dtype=torch.bool)
    assert choose_tokens(logits, [_state()], seen, [], settings) == [1]


def test_repetition_penalty_and_repeated_ngrams() -> None:
    settings = GenerationSettings(temperature=0, repetition_penalty=2.0)
    seen = torch.tensor([[False, True, False]])
    # Token 1 was seen: 0.9 / 2 falls below token 2's 0.5.
    assert choose_tokens(torch.tensor([[0.1, 0.9, 0.5]]), [_state()], seen, [], settings) == [2]
    # After "4 5 6 7 4 5", a 3-gram table bans 6 (it would repeat "4 5 6").
    row = _state(history=[4, 5, 6, 7, 4, 5], ngram=3)
    logits = torch.zeros((1, 10))
    logits[0, 6] = 5.0
    no_penalty = settings.model_copy(update={"repetition_penalty": 1.0})
    empty = torch.zeros((1, 10), dtype=torch.bool)
    assert choose_tokens(logits, [row], empty, [], no_penalty) != [6]
    row.append(9)
    assert row.banned() == [], "after '5 9' nothing is banned"
