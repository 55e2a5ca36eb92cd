"""peers: the service against llama.cpp's `llama-server` and vLLM's CPU build on the same model,
prompts, sampling and token lengths, side by side in one run, at 1 and 32 clients.

A post, for a peer, is what the graph asks of its model replicas: the three parts' prompts (this
service's own, as token ids, so every system prefills the same tokens) sent at once, each held to
the tokens the service writes for that part (`PEER_TOKENS`, checked against the service's own
count in the same run); the post is done when the last part is. The service answers
POST /v1/posts with the cache off, under its defaults and, where the plan asks, under the settings
before the engine work of issue 16 (`BEFORE_ARGS`), redeployed between the two. Each round
measures every system at every level, the systems' order rotating between rounds; the table gives
medians over rounds.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from benchmarks.context import Context
from benchmarks.load import Record, http_client, http_post_sender, median, percentile
from benchmarks.peer_requests import (
    PARTS,
    PEER_APIS,
    PEER_TOKENS,
    peer_prompts,
    peer_sender,
    sampling,
)
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio, records_table
from benchmarks.scenarios.common import (
    LENGTH,
    MODEL_DEPLOYMENTS,
    Load,
    deploy_warm,
    describe_args,
    fresh_post_load,
    nocache_args,
    run_load,
)
from benchmarks.workload import request_body

SINGLE_TARGET = 1.0  # service seconds per post at 1 client over llama.cpp's, at most
MANY_TARGET = 2.0  # service posts/s at the top level over the best peer's, at least
SERVICE = "service"
SERVICE_BEFORE = "service, before"
# The engine as it was before float16 weights and threads that follow the load.
BEFORE_ARGS = {"model": {"quantization": "none", "adaptive_threads": False}}
WEIGHTS = {
    SERVICE: "float16 weights, float32 activations (dequantized from the GGUF)",
    SERVICE_BEFORE: "float32 (dequantized from the GGUF), one thread per model replica",
    "llama.cpp": "the GGUF file itself (Q4_1)",
    "vllm": "float32 (the service's converted folder)",
}


# ---- the runs -------------------------------------------------------------------------------


@dataclass
class SystemRun:
    round: int
    system: str
    clients: int
    requests: int
    ok: int
    other: int
    posts_per_s: float
    post_p50_s: float
    tokens_per_s: float
    tokens_per_post: dict[str, float]  # by part; the service's own count, or the peer's usage


def _summarize(
    round_: int,
    system: str,
    clients: int,
    records: list[Record],
    wall_s: float,
    tokens: dict[str, float],
) -> SystemRun:
    ok = [r for r in records if r.ok]
    total = sum(tokens.values())
    return SystemRun(
        round=round_,
        system=system,
        clients=clients,
        requests=len(records),
        ok=len(ok),
        other=len(records) - len(ok),
        posts_per_s=len(ok) / wall_s if wall_s > 0 else float("nan"),
        post_p50_s=percentile([r.latency_s for r in ok], 50),
        tokens_per_s=total / wall_s if wall_s > 0 else float("nan"),
        tokens_per_post={part: count / len(ok) for part, count in tokens.items()} if ok else {},
    )


def _load_for(ctx: Context, clients: int) -> Load:
    plan = ctx.plan
    duration = plan.peers_single_s if clients == 1 else plan.peers_many_s
    return fresh_post_load(ctx, clients, duration)


def _service_tokens() -> dict[str, int]:
    from ray import serve

    from benchmarks.apps import GRAPH_APP

    tokens = {}
    for part, name in MODEL_DEPLOYMENTS.items():
        handle = serve.get_deployment_handle(name, app_name=GRAPH_APP)
        tokens[part] = int(handle.info.remote().result(timeout_s=60)["generated_tokens"])
    return tokens


def run_service(
    ctx: Context, url: str, clients: int, round_: int, system: str = SERVICE
) -> SystemRun:
    load = _load_for(ctx, clients)
    seeds = [ctx.next_seed() for _ in range(load.max_requests)]

    def body_for(i: int) -> dict[str, Any]:
        return request_body(i, seeds[i], length=LENGTH, use_cache=False)

    @contextlib.asynccontextmanager
    async def factory() -> Any:
        async with http_client(clients, load.hard_limit_s) as client:
            yield http_post_sender(client, f"{url}/v1/posts", body_for)

    before = _service_tokens()
    run = run_load(factory, load)
    after = _service_tokens()
    tokens = {part: float(after[part] - before[part]) for part in PARTS}
    return _summarize(round_, system, clients, run.records, run.wall_s, tokens)


def run_peer(
    ctx: Context, name: str, base_url: str, clients: int, round_: int, sample: dict[str, float]
) -> SystemRun:
    load = _load_for(ctx, clients)
    posts = peer_prompts(ctx, load.max_requests)
    api = PEER_APIS[name]

    @contextlib.asynccontextmanager
    async def factory() -> Any:
        # Three connections per client: a post's parts go at once.
        async with http_client(3 * clients, load.hard_limit_s) as client:
            yield peer_sender(client, base_url, api, posts, sample)

    run = run_load(factory, load)
    tokens = {
        part: float(sum(r.info["tokens"].get(part, 0) for r in run.records if r.ok))
        for part in PARTS
    }
    return _summarize(round_, name, clients, run.records, run.wall_s, tokens)


def peers(ctx: Context) -> ScenarioReport:
    from benchmarks.peer_servers import (
        PEERS_DIR,
        converted_model_dir,
        gguf_path,
        start_llama_server,
        start_vllm,
    )

    plan = ctx.plan
    args = nocache_args(ctx)
    services = {SERVICE: args}
    if plan.peers_service_before:
        services[SERVICE_BEFORE] = {**args, **BEFORE_ARGS}
    PEERS_DIR.mkdir(exist_ok=True)
    build_log = PEERS_DIR / "build.log"
    servers = {}
    try:
        with ctx.step("peers: start the service (cache off)"):
            url, deployed = deploy_warm(ctx, args), SERVICE
        with ctx.step("peers: build and start llama.cpp's llama-server"):
            servers["llama.cpp"] = start_llama_server(gguf_path(), build_log)
        if "vllm" in plan.peers:
            with ctx.step("peers: install and start vLLM's CPU build"):
                servers["vllm"] = start_vllm(converted_model_dir(), build_log)
        sample = sampling()
        systems = [*services, *servers]
        runs: list[SystemRun] = []
        for round_ in range(plan.peers_rounds):
            order = systems[round_ % len(systems) :] + systems[: round_ % len(systems)]
            for system in order:
                if system in services and system != deployed:
                    with ctx.step(f"peers: round {round_ + 1}, deploy {system}"):
                        url, deployed = deploy_warm(ctx, services[system]), system
                for clients in plan.peers_levels:
                    with ctx.step(f"peers: round {round_ + 1}, {clients} clients, {system}"):
                        if system in services:
                            runs.append(run_service(ctx, url, clients, round_ + 1, system))
                        else:
                            base = servers[system].base_url
                            runs.append(run_peer(ctx, system, base, clients, round_ + 1, sample))
    finally:
        for server in servers.values():
            server.stop()
    return ScenarioReport(
        name="peers",
        tables=[
            summary_table(plan.peers_levels, systems, runs, args, sample),
            runs_table(runs),
        ],
        throughput_unit="posts/s",
    )


def summary_table(
    levels: tuple[int, ...],
    systems: list[str],
    runs: list[SystemRun],
    args: dict[str, Any],
    sample: dict[str, float],
) -> Table:
    def median_of(system: str, clients: int, field: str) -> float:
        return median(
            [getattr(r, field) for r in runs if r.system == system and r.clients == clients]
        )

    single, many = min(levels), max(levels)
    rows = []
    for system in systems:
        row: list[Any] = [system, WEIGHTS.get(system, "")]
        for clients in levels:
            row += [
                median_of(system, clients, "posts_per_s"),
                median_of(system, clients, "post_p50_s"),
                median_of(system, clients, "tokens_per_s"),
            ]
        rows.append(row)
    notes = []
    if "llama.cpp" in systems:
        seconds = ratio(
            median_of(SERVICE, single, "post_p50_s"), median_of("llama.cpp", single, "post_p50_s")
        )
        verdict = "met" if seconds <= SINGLE_TARGET else "NOT met"
        notes.append(
            f"{single} client: the service takes {fmt_ratio(seconds)} llama.cpp's seconds per "
            f"post (target ≤ {SINGLE_TARGET:.1f}x): {verdict}."
        )
    peers_only = [s for s in systems if not s.startswith(SERVICE)]
    if peers_only:
        best = max(peers_only, key=lambda s: median_of(s, many, "posts_per_s"))
        achieved = ratio(
            median_of(SERVICE, many, "posts_per_s"), median_of(best, many, "posts_per_s")
        )
        verdict = "met" if achieved >= MANY_TARGET else "NOT met"
        notes.append(
            f"{many} clients: the service makes {fmt_ratio(achieved)} the posts/s of the best "
            f"peer ({best}) (target ≥ {MANY_TARGET:.0f}x): {verdict}."
        )
    if SERVICE_BEFORE in systems:
        notes.append(
            "The service over itself before (float32 weights, one thread per model replica), "
            "same run: "
            + "; ".join(
                f"{clients} client(s): posts/s "
                + fmt_ratio(
                    ratio(
                        median_of(SERVICE, clients, "posts_per_s"),
                        median_of(SERVICE_BEFORE, clients, "posts_per_s"),
                    )
                )
                + ", s per post "
                + fmt_ratio(
                    ratio(
                        median_of(SERVICE, clients, "post_p50_s"),
                        median_of(SERVICE_BEFORE, clients, "post_p50_s"),
                    )
                )
                for clients in levels
            )
            + "."
        )
    service_tokens = {
        clients: {
            part: median(
                [
                    r.tokens_per_post.get(part, float("nan"))
                    for r in runs
                    if r.system == SERVICE and r.clients == clients
                ]
            )
            for part in PARTS
        }
        for clients in levels
    }
    notes += [
        "Peers are held to "
        + ", ".join(f"{part} {n}" for part, n in PEER_TOKENS.items())
        + " tokens per post (ignore_eos); the service wrote, per post (its own token counter, "
        "every candidate included): "
        + "; ".join(
            f"{clients} client(s): "
            + ", ".join(f"{part} {count:.0f}" for part, count in tokens.items())
            for clients, tokens in service_tokens.items()
        )
        + ".",
        f"Sampling on every side: {sample} (vLLM without seeds).",
        "s per post: the median time from sending a post's request(s) to its last answer. "
        "tokens/s: output tokens over the level's wall time (the peers' usage counts; the "
        "service's own counter, every candidate included).",
        describe_args(args),
    ]
    headers = ["system", "weights"]
    for clients in levels:
        headers += [f"{clients}c posts/s", f"{clients}c s per post", f"{clients}c tokens/s"]
    return Table(
        title="This service beside llama.cpp and vLLM, one run: medians over rounds",
        description=(
            f"`{LENGTH}` posts of this service's prompts; N clients in closed loop, each post's "
            "three parts at once; the systems' order rotates between rounds."
        ),
        headers=headers,
        rows=rows,
        notes=notes,
    )


RUN_COLUMNS = (
    ("round", "round"),
    ("system", "system"),
    ("clients", "clients"),
    ("requests", "requests"),
    ("2xx", "ok"),
    ("other", "other"),
    ("posts/s", "posts_per_s"),
    ("s per post p50", "post_p50_s"),
    ("output tokens/s", "tokens_per_s"),
)


def runs_table(runs: list[SystemRun]) -> Table:
    return records_table(
        "Every run",
        "Each system at each level in each round, in the order they ran.",
        runs,
        RUN_COLUMNS,
    )
