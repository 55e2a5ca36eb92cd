"""One validated settings object for the whole service.

Sources, strongest first: explicit arguments (a Serve config's ``args:`` or ``build_app(args)``),
environment variables (``LINKEDIN_POSTS_<SECTION>__<FIELD>``, plus the conventional ``REDIS_URL``),
a YAML file (``config_file`` argument or ``LINKEDIN_POSTS_CONFIG``), then the embedded defaults,
which serve SmolLM2-135M-Instruct on CPU with an in-memory + disk cache and no Redis.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from deployments.schemas import PostPart
from deployments.settings.deployment_options import (
    _CALL_DEPTH,
    DEPLOYMENT_NAMES,
    DRAIN_MARGIN_S,
    DeploymentOptions,
    _default_deployments,
)
from deployments.settings.sections import (
    DEFAULT_CACHE_ROOT,
    BatchingSettings,
    CacheSettings,
    CandidateSettings,
    GenerationSettings,
    HttpSettings,
    LoggingSettings,
    ModelSettings,
    ProxySettings,
)
from deployments.settings.security import ApiKey, SecuritySettings, _refuse_plain_keys

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_CACHE_ROOT",
    "DEPLOYMENT_NAMES",
    "DRAIN_MARGIN_S",
    "ENV_PREFIX",
    "ApiKey",
    "AppSettings",
    "BatchingSettings",
    "CacheSettings",
    "CandidateSettings",
    "DeploymentOptions",
    "GenerationSettings",
    "HttpSettings",
    "LoggingSettings",
    "ModelSettings",
    "ProxySettings",
    "SecuritySettings",
]

ENV_PREFIX = "LINKEDIN_POSTS_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG"

# The YAML file's values for the settings object being built right now (see AppSettings.load).
_file_values: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "linkedin_posts_file_values", default=None
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

    def serve_options(self, deployment: str) -> dict[str, Any]:
        """The deployment's Serve options: its own, its drain, the one Retry-After."""
        return self.deployments[deployment].serve_options(
            self.drain_s(deployment), self.http.retry_after_s
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
