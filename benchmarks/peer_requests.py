"""What a peer is sent for one post, as the graph asks its model replicas: the three parts'
prompts (this service's own, rendered and tokenized as its replicas do, sent as token ids so
that every system prefills the same tokens) at once, each held to the tokens the service writes
for that part (`PEER_TOKENS`), with the service's sampling; llama.cpp's and vLLM's completion
APIs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.context import Context
from benchmarks.load import Outcome, Send
from benchmarks.scenarios.common import LENGTH
from benchmarks.workload import request_body

PARTS = ("title", "content", "hashtags")
# Tokens per part of a short post as this service writes them (issue 16's sitting); each run
# prints the service's own figures beside them.
PEER_TOKENS = {"title": 29, "content": 152, "hashtags": 32}


@dataclass(frozen=True)
class PeerPrompt:
    """One part of one post, as a peer gets it."""

    part: str
    token_ids: list[int]
    max_tokens: int
    seed: int


def peer_prompts(ctx: Context, count: int) -> list[list[PeerPrompt]]:
    """`count` posts' parts, rendered and tokenized exactly as the service's replicas do."""
    from deployments.engine.prompt_tokens import prompt_token_ids
    from deployments.post.prompts import post_jobs
    from deployments.schemas import PostRequest
    from deployments.settings import AppSettings

    settings = AppSettings.load()
    tokenizer = ctx.model_tokenizer()
    posts = []
    for i in range(count):
        seed = ctx.next_seed()
        request = PostRequest(**request_body(i, seed, length=LENGTH, use_cache=False))
        jobs = post_jobs(request, seed, settings.generation, all_candidates=False)
        posts.append(
            [
                PeerPrompt(
                    part,
                    prompt_token_ids(
                        tokenizer, job.messages, job.user_text, settings.model.max_input_tokens
                    ),
                    PEER_TOKENS[part],
                    job.seed,
                )
                for part, part_jobs in jobs.items()
                for job in part_jobs
            ]
        )
    return posts


def sampling() -> dict[str, float]:
    from deployments.settings import AppSettings

    g = AppSettings.load().generation
    return {
        "temperature": g.temperature,
        "top_p": g.top_p,
        "top_k": g.top_k,
        "repetition_penalty": g.repetition_penalty,
    }


def llama_body(prompt: PeerPrompt, sample: dict[str, float]) -> dict[str, Any]:
    return {
        "prompt": prompt.token_ids,
        "n_predict": prompt.max_tokens,
        "ignore_eos": True,
        "cache_prompt": True,
        "seed": prompt.seed % 2**31,
        "temperature": sample["temperature"],
        "top_p": sample["top_p"],
        "top_k": sample["top_k"],
        "repeat_penalty": sample["repetition_penalty"],
    }


def vllm_body(prompt: PeerPrompt, sample: dict[str, float]) -> dict[str, Any]:
    # No seed: with per-request seeds vLLM's CPU build dies at 32 concurrent requests ("CPU
    # Generator does not use offset").
    return {
        "model": "smollm2",
        "prompt": prompt.token_ids,
        "max_tokens": prompt.max_tokens,
        "min_tokens": prompt.max_tokens,
        "ignore_eos": True,
        **sample,
    }


def llama_tokens(answer: dict[str, Any]) -> int:
    return int(answer["tokens_predicted"])


def vllm_tokens(answer: dict[str, Any]) -> int:
    return int(answer["usage"]["completion_tokens"])


@dataclass(frozen=True)
class PeerApi:
    path: str
    body: Callable[[PeerPrompt, dict[str, float]], dict[str, Any]]
    tokens: Callable[[dict[str, Any]], int]


PEER_APIS = {
    "llama.cpp": PeerApi("/completion", llama_body, llama_tokens),
    "vllm": PeerApi("/v1/completions", vllm_body, vllm_tokens),
}


def peer_sender(
    client: httpx.AsyncClient,
    base_url: str,
    api: PeerApi,
    posts: list[list[PeerPrompt]],
    sample: dict[str, float],
) -> Send:
    """One post: its parts' completions at once; 200 only if every part is."""

    async def part(prompt: PeerPrompt) -> tuple[int, int]:
        response = await client.post(f"{base_url}{api.path}", json=api.body(prompt, sample))
        if response.status_code != 200:
            return response.status_code, 0
        return 200, api.tokens(response.json())

    async def send(index: int) -> Outcome:
        prompts = posts[index % len(posts)]
        answers = await asyncio.gather(*(part(p) for p in prompts))
        failed = [status for status, _ in answers if status != 200]
        tokens = {p.part: count for p, (_, count) in zip(prompts, answers, strict=True)}
        return Outcome(failed[0] if failed else 200, {"tokens": tokens})

    return send
