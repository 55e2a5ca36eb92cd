"""The pure parts of the benchmark harness: statistics, the load loop, tables, Zipf sampling.
No Ray, no model."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.load import (
    TRANSPORT_ERROR,
    UNFINISHED,
    Outcome,
    Record,
    closed_loop,
    percentile,
    summarize,
    throughput,
    zipf_sample,
)
from benchmarks.report import (
    ScenarioReport,
    Series,
    Table,
    fmt,
    fmt_ratio,
    markdown_table,
    ratio,
    render_results,
)
from benchmarks.workload import request_body, zipf_topics


def test_percentile_interpolates_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_throughput() -> None:
    assert throughput(30, 2.0) == 15.0
    assert math.isnan(throughput(5, 0.0))


def test_summarize_counts_statuses_and_uses_only_successes_for_latency() -> None:
    records = [
        Record(0, 0.100, 200),
        Record(1, 0.200, 200),
        Record(2, 0.300, 201),
        Record(3, 0.002, 503),
        Record(4, 0.004, 429),
        Record(5, 5.000, 500),
        Record(6, 0.010, 422),
        Record(7, 1.000, TRANSPORT_ERROR),
        Record(8, 9.000, UNFINISHED),
    ]
    stats = summarize(records, wall_s=2.0, concurrency=4)
    assert stats.requests == 9
    assert stats.ok == 3
    assert stats.rejected == 2
    assert stats.errors_5xx == 1  # 503 is a rejection, not an error
    assert stats.failed == 2
    assert stats.throughput == 1.5
    assert stats.p50_ms == pytest.approx(200)
    assert stats.reject_p50_ms == pytest.approx(3)
    empty = summarize([], 1.0, 1)
    assert empty.ok == 0 and math.isnan(empty.p50_ms) and math.isnan(empty.reject_p50_ms)


def test_closed_loop_respects_request_cap_and_concurrency() -> None:
    in_flight = 0
    peak = 0
    seen: list[int] = []

    async def send(index: int) -> Outcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        seen.append(index)
        return Outcome(200 if index % 5 else 503, {"i": index})

    run = asyncio.run(
        closed_loop(send, concurrency=4, duration_s=60, max_requests=20, hard_limit_s=10)
    )
    assert sorted(seen) == list(range(20))
    assert peak == 4
    stats = run.stats()
    assert (stats.requests, stats.ok, stats.rejected) == (20, 16, 4)
    assert run.wall_s < 10


def test_closed_loop_hard_limit_cancels_and_errors_are_recorded() -> None:
    async def send(index: int) -> Outcome:
        if index == 0:
            raise ConnectionError("refused")
        await asyncio.sleep(30)
        return Outcome(200)

    run = asyncio.run(
        closed_loop(send, concurrency=2, duration_s=60, max_requests=3, hard_limit_s=0.2)
    )
    statuses = Counter(r.status for r in run.records)
    assert statuses == {TRANSPORT_ERROR: 1, UNFINISHED: 2}
    assert run.wall_s < 5


def test_zipf_sample_is_deterministic_and_skewed() -> None:
    first = zipf_sample(200, 1.1, 2000, seed=7)
    assert first == zipf_sample(200, 1.1, 2000, seed=7)
    assert first != zipf_sample(200, 1.1, 2000, seed=8)
    assert all(0 <= i < 200 for i in first)
    counts = Counter(first)
    assert counts[0] > counts[1] > counts[9]
    # Rank 1 holds 1 / H(200, 1.1) of the mass, about 21%.
    assert 0.17 < counts[0] / len(first) < 0.26


def test_markdown_table_formats_and_aligns() -> None:
    table = markdown_table(
        ["name", "req/s", "note"],
        [["a|b", 1234.5678, None], ["c", 0.12345, float("nan")], ["d", 7, "x\ny"]],
    )
    lines = table.splitlines()
    assert lines[0] == "| name | req/s | note |"
    assert lines[1] == "| --- | ---: | --- |"
    assert lines[2] == "| a\\|b | 1,235 | — |"
    assert lines[3] == "| c | 0.123 | — |"
    assert lines[4] == "| d | 7 | x y |"
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])


def test_cell_and_ratio_formatting() -> None:
    assert fmt(12.345) == "12.3"
    assert fmt(0.0012) == "0.0012"
    assert fmt(0.04671) == "0.0467"
    assert fmt(2.0) == "2.00"
    assert fmt(True) == "yes"
    assert fmt_ratio(ratio(12.0, 2.0)) == "6.00x"
    assert fmt_ratio(ratio(1.0, 0.0)) == "—"


def test_render_results_has_header_tables_and_plot_links(tmp_path: Path) -> None:
    report = ScenarioReport(
        name="cache",
        tables=[Table("Hits", "Hits against the ceiling.", ["clients", "req/s"], [[1, 10.0]])],
        series=[Series("hit", [1], [10.0], [1.0], [2.0])],
        plot=tmp_path / "plots" / "cache.png",
    )
    text = render_results({"git commit": "abc1234+dirty"}, [report], tmp_path / "RESULTS.md")
    assert "- **git commit**: abc1234+dirty" in text
    assert "## cache" in text and "### Hits" in text
    assert "| clients | req/s |" in text
    assert "](plots/cache.png)" in text


def test_workload_bodies_are_valid_requests() -> None:
    from deployments.schemas import PostRequest

    body = request_body(3, 42, use_cache=False)
    assert PostRequest(**body).seed == 42
    topics = zipf_topics(200)
    assert len(set(topics)) == 200
    for topic in topics:
        PostRequest(topic=topic)


def test_plain_generate_is_transformers_generate_with_the_service_settings(
    tiny_model_dir: Path,
) -> None:
    from benchmarks.scenarios.baseline import plain_generate
    from deployments.engine.model_loader import load_model
    from deployments.post.prompts import build_job
    from deployments.schemas import PostRequest
    from deployments.settings import GenerationSettings, ModelSettings

    loaded = load_model(ModelSettings(model=str(tiny_model_dir), device="cpu"))
    generation = GenerationSettings()
    job = build_job("title", PostRequest(topic="Baselines"), 3, generation)
    text, count = plain_generate(loaded, job, generation)
    assert 0 < count <= job.max_new_tokens
    assert plain_generate(loaded, job, generation) == (text, count), "seeded: same post"


def test_the_harness_cli_places_each_run_in_a_folder_of_its_own() -> None:
    import datetime as dt

    from benchmarks.__main__ import parse_args
    from benchmarks.paths import SAVED_ROOT
    from benchmarks.runner import results_path

    args = parse_args(["graph", "--save", "engine-ab"])
    today = dt.date.today().isoformat()
    assert results_path(args.out, args.save, quick=False) == (
        SAVED_ROOT / f"{today}-engine-ab" / "RESULTS.md"
    )
    default = results_path(None, None, quick=False)
    assert default.parent.parent == SAVED_ROOT and default.parent.name.endswith("-run")
    assert SAVED_ROOT not in results_path(None, None, quick=True).parents
    with pytest.raises(SystemExit):
        parse_args(["graph", "--save", "../outside"])


# ---- streaming scenario: reading answers as they arrive ----------------------------------------


def test_parse_sse_returns_complete_events_and_keeps_the_rest() -> None:
    from benchmarks.scenarios.streaming import parse_sse

    events, rest = parse_sse('event: meta\ndata: {"a": 1}\n\nevent: content\ndata: {"te')
    assert events == [("meta", '{"a": 1}')]
    assert rest == 'event: content\ndata: {"te'
    events, rest = parse_sse(rest + 'xt": "Hi"}\n\n')
    assert events == [("content", '{"text": "Hi"}')] and rest == ""


def _answer_app(chunks: list[bytes], media_type: str, status: int = 200):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def endpoint(request):  # type: ignore[no-untyped-def]
        async def body():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type=media_type, status_code=status)

    return Starlette(routes=[Route("/p", endpoint, methods=["POST"])])


def _send_once(app) -> Outcome:  # type: ignore[no-untyped-def]
    import httpx

    from benchmarks.scenarios.streaming import _stream_sender

    async def main() -> Outcome:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await _stream_sender(client, "http://t/p", lambda i: {"topic": "x"})(0)

    return asyncio.run(main())


def test_stream_sender_times_first_byte_first_piece_and_end() -> None:
    chunks = [
        b'event: meta\ndata: {"hit": false}\n\n',
        b'event: content\ndata: {"text": "Hel',  # an event split across chunks
        b'lo"}\n\nevent: post\ndata: {"text": "Hello"}\n\n',
    ]
    outcome = _send_once(_answer_app(chunks, "text/event-stream"))
    timing = outcome.info["timing"]
    assert outcome.status == 200
    assert timing.first_piece_s is not None
    assert timing.first_byte_s <= timing.first_piece_s <= timing.done_s


def test_stream_sender_counts_an_error_event_by_its_code_and_a_pieceless_stream_as_failed() -> None:
    error = b'event: error\ndata: {"error": {"code": "overloaded", "message": "m"}}\n\n'
    outcome = _send_once(_answer_app([b"event: meta\ndata: {}\n\n", error], "text/event-stream"))
    assert outcome.status == 503
    pieceless = [b"event: meta\ndata: {}\n\n", b'event: post\ndata: {"text": "x"}\n\n']
    assert _send_once(_answer_app(pieceless, "text/event-stream")).status == 0


def test_stream_sender_reads_an_unstreamed_post_whole() -> None:
    outcome = _send_once(_answer_app([b'{"te', b'xt": "x"}'], "application/json"))
    assert outcome.status == 200 and outcome.info["timing"].first_piece_s is None


def test_streaming_summary_gives_the_posts_per_s_cost_at_the_top_level() -> None:
    from benchmarks.scenarios.streaming import ModeRun, _summary_table

    def run(round_: int, clients: int, mode: str, posts: float) -> ModeRun:
        return ModeRun(round_, clients, mode, 10, 10, 0, posts, 1, 1, 2, 2, 3, 3)

    runs = [
        run(1, 32, "unstreamed", 0.40),
        run(1, 32, "streamed", 0.37),
        run(2, 32, "unstreamed", 0.50),
        run(2, 32, "streamed", 0.39),
        run(3, 32, "unstreamed", 0.42),
        run(3, 32, "streamed", 0.41),
    ]
    table = _summary_table((32,), runs, {}, {})
    assert [row[5] for row in table.rows] == [0.42, 0.39]  # medians over rounds
    assert "0.93x" in table.notes[0] and "NOT met" in table.notes[0]


def test_stream_metric_counts_reads_rays_prefixed_export() -> None:
    from benchmarks.scenarios import streaming

    text = (
        "# HELP ray_linkedin_posts_stream_first_piece_seconds x\n"
        'ray_linkedin_posts_stream_first_piece_seconds_count{part="title",a="b"} 3.0\n'
        'ray_linkedin_posts_stream_first_piece_seconds_count{part="content"} 2.0\n'
        'ray_linkedin_posts_stream_piece_gap_seconds_sum{part="title"} 9.0\n'
        "ray_linkedin_posts_stream_piece_gap_seconds_count 4.0\n"
    )
    assert streaming.metric_counts(text) == {
        "linkedin_posts_stream_first_piece_seconds_count": 5.0,
        "linkedin_posts_stream_piece_gap_seconds_count": 4.0,
    }


# ---- peers scenario: what the peers are sent, and the verdicts -----------------------------------


def test_peer_bodies_hold_each_part_to_its_tokens_with_the_services_sampling() -> None:
    from benchmarks.peer_requests import PeerPrompt, llama_body, sampling, vllm_body

    prompt = PeerPrompt("content", [1, 2, 3], 152, seed=2**40 + 7)
    sample = sampling()
    llama = llama_body(prompt, sample)
    assert llama["prompt"] == [1, 2, 3] and llama["n_predict"] == 152 and llama["ignore_eos"]
    assert llama["repeat_penalty"] == sample["repetition_penalty"] == 1.05
    assert 0 <= llama["seed"] < 2**31
    vllm = vllm_body(prompt, sample)
    assert vllm["max_tokens"] == vllm["min_tokens"] == 152 and vllm["ignore_eos"]
    assert "seed" not in vllm and vllm["top_k"] == sample["top_k"]


def test_peer_sender_sends_a_posts_parts_at_once_and_fails_it_if_one_fails() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from benchmarks.peer_requests import PEER_APIS, PeerPrompt, peer_sender

    in_flight = {"now": 0, "most": 0}

    async def completion(request):  # type: ignore[no-untyped-def]
        body = await request.json()
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        await asyncio.sleep(0.05)
        in_flight["now"] -= 1
        if body["prompt"] == [666]:
            return JSONResponse({"error": "boom"}, status_code=500)
        return JSONResponse({"tokens_predicted": body["n_predict"]})

    app = Starlette(routes=[Route("/completion", completion, methods=["POST"])])
    good = [
        PeerPrompt(part, [1], n, 0) for part, n in (("title", 3), ("content", 9), ("hashtags", 2))
    ]
    bad = [*good[:2], PeerPrompt("hashtags", [666], 2, 0)]

    async def main() -> list[Outcome]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            send = peer_sender(
                client,
                "http://t",
                PEER_APIS["llama.cpp"],
                [good, bad],
                {"temperature": 0.4, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.05},
            )
            return [await send(0), await send(1)]

    ok, failed = asyncio.run(main())
    assert ok.status == 200 and ok.info["tokens"] == {"title": 3, "content": 9, "hashtags": 2}
    assert in_flight["most"] == 3
    assert failed.status == 500


def test_peers_summary_verdicts_compare_the_service_with_llama_cpp_and_the_best_peer() -> None:
    from benchmarks.scenarios.peers import SystemRun, summary_table

    def run(system: str, clients: int, posts: float, seconds: float) -> SystemRun:
        return SystemRun(1, system, clients, 10, 10, 0, posts, seconds, 100.0, {"content": 150})

    runs = [
        run("service", 1, 0.1, 10.0),
        run("llama.cpp", 1, 0.35, 2.8),
        run("vllm", 1, 0.12, 8.0),
        run("service", 32, 1.2, 30.0),
        run("llama.cpp", 32, 0.45, 60.0),
        run("vllm", 32, 0.57, 50.0),
    ]
    table = summary_table((1, 32), ["service", "llama.cpp", "vllm"], runs, {}, {})
    assert "3.57x" in table.notes[0] and "NOT met" in table.notes[0]
    assert "(vllm)" in table.notes[1] and "2.11x" in table.notes[1] and ": met" in table.notes[1]
    assert table.rows[0][:3] == ["service", table.rows[0][1], 0.1]


def test_peers_summary_compares_the_service_with_itself_before_and_never_as_a_peer() -> None:
    from benchmarks.scenarios.peers import SERVICE_BEFORE, SystemRun, summary_table

    def run(system: str, clients: int, posts: float, seconds: float) -> SystemRun:
        return SystemRun(1, system, clients, 10, 10, 0, posts, seconds, 100.0, {"content": 150})

    runs = [
        run("service", 1, 0.1, 10.0),
        run(SERVICE_BEFORE, 1, 0.08, 12.5),
        run("llama.cpp", 1, 0.35, 2.8),
        run("service", 32, 1.2, 30.0),
        run(SERVICE_BEFORE, 32, 2.0, 20.0),  # faster than every peer: still not one
        run("llama.cpp", 32, 0.45, 60.0),
    ]
    systems = ["service", SERVICE_BEFORE, "llama.cpp"]
    table = summary_table((1, 32), systems, runs, {}, {})
    assert "(llama.cpp)" in table.notes[1] and "2.67x" in table.notes[1]
    before = table.notes[2]
    assert "1 client(s): posts/s 1.25x, s per post 0.80x" in before
    assert "32 client(s): posts/s 0.60x, s per post 1.50x" in before


def test_wait_ready_takes_a_200_with_an_empty_body() -> None:
    import http.server
    import threading

    from benchmarks.apps import wait_ready

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert wait_ready(f"http://127.0.0.1:{server.server_port}/health", 10) == {}
    finally:
        server.shutdown()
        server.server_close()


def test_llama_server_is_built_for_the_cpu_it_runs_on(tmp_path: Path) -> None:
    from benchmarks.peer_servers import cpu_flags, ggml_cpu_options

    zen3 = tmp_path / "cpuinfo"
    zen3.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2\n")
    assert cpu_flags(zen3) >= {"avx2", "fma"}
    options = ggml_cpu_options(cpu_flags(zen3))
    assert "-DGGML_NATIVE=OFF" in options, "never -march=native (AMX crashed llama-server)"
    assert "-DGGML_AVX512=OFF" in options and "-DGGML_AVX512_BF16=OFF" in options
    xeon = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_vbmi", "amx_tile"}
    assert {"-DGGML_AVX512=ON", "-DGGML_AVX512_BF16=ON"} <= set(ggml_cpu_options(xeon))
    assert cpu_flags(tmp_path / "missing") == set()
