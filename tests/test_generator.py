"""TextGenerator on a tiny real model: batching, per-row budgets and seeds, failures, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deployments.generator import PerRowSampler, TextGenerator, shared_prefix_length
from deployments.model_loader import load_model, pick_dtype
from deployments.prompts import build_job
from deployments.schemas import GenerationJob, GenerationResult, PostRequest
from deployments.settings import GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> TextGenerator:
    model_settings = ModelSettings(model=str(tiny_model_dir), device="cpu")
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


def test_loads_local_folder_on_cpu(generator: TextGenerator, tiny_model_dir: Path) -> None:
    assert generator.loaded.device == "cpu"
    assert generator.loaded.dtype == str(pick_dtype("auto", "cpu")).removeprefix("torch.")
    assert generator.model_id == str(tiny_model_dir)
    assert generator.loaded.tokenizer.padding_side == "left"


def test_one_result_per_job_within_each_rows_budget(generator: TextGenerator) -> None:
    results = generator.generate_batch([_job(1, max_new=3), _job(2, max_new=20), _job(3, 9)])
    counts = [_ok(r).new_tokens for r in results]
    assert counts[0] <= 3 and counts[1] <= 20 and counts[2] <= 9
    assert counts[1] > 3, "a short row must not cut the longer rows of its batch"
    assert all(_ok(r).batch_size == 3 for r in results)


def test_same_seed_same_text_whatever_the_batch(generator: TextGenerator) -> None:
    alone = _ok(generator.generate_batch([_job(7)])[0]).text
    batched = generator.generate_batch([_job(99, topic="Something else entirely"), _job(7)])
    assert _ok(batched[1]).text == alone
    assert _ok(generator.generate_batch([_job(8)])[0]).text != alone


def test_shared_prefix_length_leaves_every_row_a_token_of_its_own() -> None:
    assert shared_prefix_length([]) == 0
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[5, 1], [6, 1]]) == 0
    assert shared_prefix_length([[7]]) == 0


def test_shared_prefix_is_prefilled_once_and_changes_no_token(generator: TextGenerator) -> None:
    jobs = [_job(21, topic="Code review"), _job(22, topic="Hiring juniors well"), _job(23)]
    first_inputs: list[tuple[int, ...]] = []

    def record(_: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        first_inputs.append(tuple(ids.shape))

    texts = {}
    for least in (0, 16):
        settings = generator.generation.model_copy(update={"shared_prefix_min_tokens": least})
        hook = generator.loaded.model.register_forward_pre_hook(record, with_kwargs=True)
        try:
            first_inputs.clear()
            results = TextGenerator(generator.loaded, settings).generate_batch(jobs)
        finally:
            hook.remove()
        texts[least] = [_ok(r).text for r in results]
        if least:
            assert first_inputs[0][0] == 1 and first_inputs[0][1] >= 16, first_inputs[:2]
            assert first_inputs[1][0] == 3 and first_inputs[1][1] < first_inputs[0][1]
        else:
            assert first_inputs[0][0] == 3
    assert texts[0] == texts[16]


def test_a_model_that_cannot_share_its_cache_generates_without_it(
    generator: TextGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers.cache_utils import DynamicCache

    jobs = [_job(31, topic="Code review"), _job(32, topic="Hiring juniors well")]
    plain_settings = generator.generation.model_copy(update={"shared_prefix_min_tokens": 0})
    plain = [
        _ok(r).text for r in TextGenerator(generator.loaded, plain_settings).generate_batch(jobs)
    ]

    def unsupported(self: DynamicCache, repeats: int) -> None:
        raise NotImplementedError("no batch expansion")

    monkeypatch.setattr(DynamicCache, "batch_repeat_interleave", unsupported)
    fallback = TextGenerator(generator.loaded, generator.generation)
    assert [_ok(r).text for r in fallback.generate_batch(jobs)] == plain
    assert fallback._share_prefixes is False


def test_a_job_that_fails_fails_alone(generator: TextGenerator) -> None:
    class Broken(TextGenerator):
        def render(self, job: GenerationJob) -> str:
            if "Unrenderable" in job.messages[-1]["content"]:
                raise ValueError("cannot render")
            return super().render(job)

    broken = Broken(generator.loaded, generator.generation)
    results = broken.generate_batch([_job(12), _job(13, topic="Unrenderable"), _job(14)])
    assert isinstance(results[1], ValueError)
    assert _ok(results[0]).text and _ok(results[2]).text


def test_cancelled_row_stops_early(generator: TextGenerator) -> None:
    results = generator.generate_batch([_job(1, max_new=30), _job(2, max_new=30)], lambda r: r == 0)
    assert _ok(results[0]).new_tokens < 5
    assert _ok(results[1]).new_tokens > 5


def test_sampler_holds_back_eos_until_min_tokens() -> None:
    eos = 3
    sampler = PerRowSampler(
        seeds=[1, 2],
        min_new_tokens=[5, 0],
        prompt_length=4,
        eos_token_ids=[eos],
        settings=GenerationSettings(temperature=0.7, top_k=0, top_p=1.0),
        device="cpu",
    )
    scores = torch.full((2, 10), -10.0)
    scores[:, eos] = 10.0  # the model wants to stop right away
    out = sampler(torch.zeros((2, 6), dtype=torch.long), scores)
    chosen = out.argmax(-1).tolist()
    assert chosen[0] != eos, "row 0 has produced 2 of its 5 minimum tokens"
    assert chosen[1] == eos
    assert (out == 0).sum(-1).tolist() == [1, 1], "one-hot: exactly one token allowed per row"


def test_greedy_when_temperature_is_zero() -> None:
    sampler = PerRowSampler(
        seeds=[1],
        min_new_tokens=[0],
        prompt_length=1,
        eos_token_ids=[],
        settings=GenerationSettings(temperature=0),
        device="cpu",
    )
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    assert sampler(torch.zeros((1, 1), dtype=torch.long), scores).argmax(-1).item() == 1
