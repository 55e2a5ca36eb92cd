"""Security settings: API keys (never plain in a Serve config's arguments), rate limits, CORS
and who may read /metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from deployments.settings.sections import _Section


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
        (
            "/healthz",
            "/readyz",
            "/docs",
            "/docs/oauth2-redirect",
            "/openapi.json",
            # The studio's static files; the API calls it makes carry the user's key.
            "/",
            "/studio/studio.js",
            "/studio/studio.css",
        ),
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
