"""DecodeEngine on a tiny real model, without Ray: rows join a running batch, answers come the
step a row ends, cancelled rows leave, a failing step fails only its rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, wait
from pathlib import Path

import pytest

from deployments.engine import DecodeEngine, GenerationEngine, build_engine
from deployments.engine.decode_loop import EngineLoad
from deployments.engine.generator import TextGenerator
from deployments.engine.model_loader import load_model
from deployments.post.prompts import build_job
from deployments.schemas import GenerationJob, GenerationResult, PostRequest
from deployments.settings import BatchingSettings, GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> TextGenerator:
    model_settings = ModelSettings(model=str(tiny_model_dir), device="cpu")
    return TextGenerator(
        load_model(model_settings), GenerationSettings(**TINY_GENERATION), model_settings
    )


@pytest.fixture
def engine(generator: TextGenerator) -> Iterator[DecodeEngine]:
    engine = DecodeEngine(generator, max_rows=4)
    yield engine
    engine.close()


def _job(seed: int, max_new: int = 16, topic: str = "Code review") -> GenerationJob:
    job = build_job("content", PostRequest(topic=topic), seed, GenerationSettings())
    return job.model_copy(update={"max_new_tokens": max_new, "min_new_tokens": max_new})


def _result(future: Future) -> GenerationResult:
    result = future.result(timeout=60)
    assert isinstance(result, GenerationResult)
    return result


def test_jobs_submitted_while_decoding_join_and_match_their_text_alone(
    engine: DecodeEngine, generator: TextGenerator
) -> None:
    jobs = [_job(1, 40), _job(2, 8, "Hiring juniors well"), _job(3, 12), _job(4, 8)]
    first = engine.submit(jobs[:1])
    while engine.stats.steps < 3:  # the first row is decoding
        time.sleep(0.001)
    later = engine.submit(jobs[1:])
    results = [_result(f) for f in first + later]
    alone = [generator.generate_batch([job])[0] for job in jobs]
    assert [r.text for r in results] == [a.text for a in alone]  # type: ignore[union-attr]
    assert [r.new_tokens for r in results] == [40, 8, 12, 8]
    assert engine.stats.mean_batch > 1, "the later jobs decoded alongside the first"
    assert results[1].elapsed_ms < results[0].elapsed_ms, "a short row is answered first"


def test_never_more_rows_than_max_rows(engine: DecodeEngine) -> None:
    futures = engine.submit([_job(10 + i, 6) for i in range(10)])
    assert all(r.new_tokens == 6 for r in map(_result, futures))
    assert engine.stats.row_steps <= 4 * engine.stats.steps
    assert engine.stats.admitted == 10


def test_fixed_batches_take_rows_only_when_empty(generator: TextGenerator) -> None:
    engine = DecodeEngine(generator, max_rows=4, continuous=False)
    try:
        first = engine.submit([_job(20, 30)])
        while engine.stats.steps < 2:
            time.sleep(0.001)
        second = engine.submit([_job(21, 5)])
        short, long = _result(second[0]), _result(first[0])
        assert long.batch_size == 1 and short.batch_size == 1
        assert short.elapsed_ms > 0
    finally:
        engine.close()


def test_a_cancelled_future_leaves_the_batch(engine: DecodeEngine) -> None:
    futures = engine.submit([_job(30, 200), _job(31, 20)])
    while engine.stats.steps < 2:
        time.sleep(0.001)
    futures[0].cancel()
    assert _result(futures[1]).new_tokens == 20
    with pytest.raises(CancelledError):
        futures[0].result(timeout=1)
    steps = engine.stats.steps
    assert steps < 150, "the cancelled row did not decode to its budget"


def test_a_failing_step_fails_its_rows_and_the_engine_goes_on(
    engine: DecodeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments.engine.generator import DecodeBatch

    real_step = DecodeBatch.step
    calls = {"n": 0}

    def flaky(self: DecodeBatch) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        real_step(self)

    monkeypatch.setattr(DecodeBatch, "step", flaky)
    failed = engine.submit([_job(40, 10)])
    with pytest.raises(RuntimeError, match="boom"):
        failed[0].result(timeout=60)
    assert _result(engine.submit([_job(41, 5)])[0]).new_tokens == 5
    assert engine.alive


def test_close_answers_every_waiting_job(generator: TextGenerator) -> None:
    engine = DecodeEngine(generator, max_rows=1)
    futures = engine.submit([_job(50 + i, 200) for i in range(3)])
    engine.close()
    done, _ = wait(futures, timeout=10)
    assert len(done) == 3
    assert all(isinstance(f.exception(), RuntimeError) for f in futures if not f.cancelled())
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit([_job(60)])


def test_build_engine_picks_the_engine_the_settings_name(tiny_model_dir: Path) -> None:
    model = ModelSettings(model=str(tiny_model_dir), device="cpu", engine="torch")
    engine = build_engine(model, GenerationSettings(**TINY_GENERATION), BatchingSettings())
    try:
        assert isinstance(engine, GenerationEngine)
        engine.check_health()
        engine.reconfigure(BatchingSettings(max_batch_size=3, continuous=False))
        info = engine.info()
        assert (info["engine"], info["max_rows"], info["continuous"]) == ("torch", 3, False)
        assert info["model"] == str(tiny_model_dir)
        (result,) = [f.result(timeout=60) for f in engine.submit([_job(1, max_new=4)])]
        assert result.new_tokens == 4
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="stopped"):
        engine.check_health()


def test_a_streaming_row_sends_its_text_piece_by_piece(
    engine: DecodeEngine, generator: TextGenerator
) -> None:
    pieces: list[str] = []
    job = _job(30, 40)
    streamed = _result(engine.submit([job], on_text=[pieces.append])[0])
    assert len(pieces) > 5, "text came while the row decoded, not once at the end"
    assert "".join(pieces) == streamed.text
    # Streaming changes nothing in what is written.
    assert streamed.text == generator.generate_batch([job])[0].text  # type: ignore[union-attr]


def test_pieces_never_split_a_character(generator: TextGenerator) -> None:
    from deployments.engine.generator import IncrementalText

    tokenizer = generator.loaded.tokenizer
    text = "Ship small 🚢 changes: 小步快跑, café, naïve — done ✅."
    tokens = tokenizer.encode(text, add_special_tokens=False)
    incremental = IncrementalText(tokenizer)
    pieces = [incremental.piece(tokens[: i + 1]) for i in range(len(tokens))]
    pieces.append(incremental.rest(tokens, tokenizer.decode(tokens)))
    assert "".join(pieces) == tokenizer.decode(tokens) == text
    assert not any("\ufffd" in piece for piece in pieces)


def test_results_carry_their_timings_and_the_engine_reports_its_load(
    generator: TextGenerator,
) -> None:
    loads: list[EngineLoad] = []
    engine = DecodeEngine(generator, max_rows=4, on_load=loads.append)
    try:
        results = [_result(f) for f in engine.submit([_job(1, 8), _job(2, 8)])]
    finally:
        engine.close()
    for result in results:
        assert result.queue_ms >= 0 and result.prefill_ms > 0
        assert result.queue_ms + result.prefill_ms <= result.first_token_ms <= result.elapsed_ms
        assert result.per_token_ms > 0 and result.decode_ms > 0
        assert result.prompt_tokens == len(generator.tokenize(_job(1, 8)))
    assert loads[0].rows == 2 and loads[0].kv_bytes > 0, "reported while decoding"
    assert loads[-1] == EngineLoad(rows=0, waiting=0, kv_bytes=0), "and once it emptied"
