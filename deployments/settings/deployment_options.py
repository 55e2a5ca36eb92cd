"""Each deployment's Serve options (replicas, autoscaling, queues, CPUs and GPUs), their
defaults, and how long each stage drains."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from deployments.settings.sections import _Section


class DeploymentOptions(_Section):
    """Serve options for one deployment (autoscaling and backpressure set deliberately)."""

    num_cpus: float = Field(0.1, ge=0, le=64)
    num_gpus: float = Field(0, ge=0, le=8)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: float = Field(2, gt=0)
    max_ongoing_requests: int = Field(64, ge=1)
    # Serve takes -1 or a positive count; 0 would pass here and fail only at deploy.
    max_queued_requests: int = Field(-1, description="-1: unbounded; else 503 past it (>= 1).")
    upscale_delay_s: float = Field(10, ge=0)
    downscale_delay_s: float = Field(120, ge=0)
    health_check_period_s: float = Field(10, gt=0)
    max_replicas_per_node: int | None = Field(
        None, ge=1, description="At most this many replicas on one node (None: no limit)."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Model deployments only: intra-op threads per replica (over "
        "model.torch_threads).",
    )

    @field_validator("max_queued_requests")
    @classmethod
    def _unbounded_or_positive(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("max_queued_requests must be -1 (unbounded) or at least 1")
        return value

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

    def serve_options(self, drain_s: float, retry_after_s: int) -> dict[str, Any]:
        """Keyword arguments for `serve.deployment(...).options(...)`; `drain_s` is the
        deployment's graceful shutdown (AppSettings.drain_s), `retry_after_s` the Retry-After
        of its 503 when its queue is full (http.retry_after_s)."""
        autoscaling: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }
        if self.initial_replicas is not None:
            autoscaling["initial_replicas"] = self.initial_replicas
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "autoscaling_config": autoscaling,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": retry_after_s},
            "graceful_shutdown_timeout_s": drain_s,
            "health_check_period_s": self.health_check_period_s,
        }
        if self.max_replicas_per_node is not None:
            options["max_replicas_per_node"] = self.max_replicas_per_node
        return options


def _default_deployments() -> dict[str, DeploymentOptions]:
    # Fractions chosen so the whole graph fits in 2 CPUs: the models get the cores, the rest are
    # I/O-bound and mostly wait on the models. A model replica holds the rows it decodes
    # (batching.max_batch_size) and the callers' queue as many more; past that, requests are shed at
    # once with 503 instead of waiting past the overall timeout for a 504
    # (benchmarks/results/2026-11-24-continuous-batching, 128 clients on 2 cores: no 5xx; under the
    # earlier `generate` path the same limits let 14 requests time out, kv-cache/). The autoscaling
    # target sits below max_ongoing_requests: at equal values Serve's autoscaler misjudges load
    # (ray#24793, ray#20977).
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
