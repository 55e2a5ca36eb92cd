"""Unit tests for deployments/settings/ and the Serve configs in config/ (no Ray started)."""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from deployments.engine.model_loader import post_model_id
from deployments.settings import (
    CONFIG_FILE_ENV,
    DEPLOYMENT_NAMES,
    ENV_PREFIX,
    AppSettings,
    DeploymentOptions,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SERVE_CONFIGS = [CONFIG_DIR / name for name in ("local.yaml", "serve.yaml", "cluster-local.yaml")]
EXPECTED_DEPLOYMENTS = {
    "Ingress",
    "CacheLookup",
    "TitleModel",
    "ContentModel",
    "HashtagModel",
    "Compiler",
}
MODEL_DEPLOYMENTS = ("TitleModel", "ContentModel", "HashtagModel")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "REDIS_URL":
            monkeypatch.delenv(name)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# --- defaults -------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = AppSettings.load()
    assert settings.app_name == "linkedin-posts"
    assert settings.model.model is None
    assert settings.model.device == "auto"
    assert settings.cache.redis_url is None
    assert settings.cache.enabled is True
    assert settings.http.port == 8000
    assert set(settings.deployments) == EXPECTED_DEPLOYMENTS
    assert tuple(settings.deployments) == DEPLOYMENT_NAMES
    for name, options in settings.deployments.items():
        assert options.min_replicas <= options.max_replicas, name
    # The models get more CPU than the I/O-bound stages.
    assert settings.deployments["ContentModel"].num_cpus > settings.deployments["Ingress"].num_cpus


def test_load_with_none_and_empty_dict_agree() -> None:
    assert AppSettings.load(None) == AppSettings.load({})


def test_load_passes_settings_through() -> None:
    settings = AppSettings.load({"http": {"port": 9001}})
    assert AppSettings.load(settings) is settings


def test_settings_are_frozen() -> None:
    settings = AppSettings.load()
    with pytest.raises(ValidationError):
        settings.app_name = "other"  # type: ignore[misc]


# --- sources: args > env > YAML file > defaults ----------------------------------------------


def test_args_override_defaults() -> None:
    settings = AppSettings.load({"model": {"device": "cpu"}, "http": {"port": 9001}})
    assert settings.model.device == "cpu"
    assert settings.http.port == 9001
    assert settings.model.dtype == "auto"  # the rest of the section keeps its defaults


def test_nested_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("LINKEDIN_POSTS_HTTP__PORT", "9100")
    settings = AppSettings.load()
    assert settings.model.device == "cpu"
    assert settings.http.port == 9100


def test_invalid_env_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        AppSettings.load()


def test_args_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__MAX_INPUT_TOKENS", "256")
    settings = AppSettings.load({"model": {"device": "cuda"}})
    assert settings.model.device == "cuda"
    assert settings.model.max_input_tokens == 256  # env still fills what args leave out


@pytest.mark.parametrize("via", ["arg", "env"])
def test_yaml_file_from_arg_or_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    config = write_yaml(
        tmp_path / "settings.yaml",
        {"model": {"device": "cuda", "max_input_tokens": 128}, "http": {"port": 9200}},
    )
    if via == "arg":
        settings = AppSettings.load({"config_file": str(config)})
    else:
        monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
        settings = AppSettings.load()
    assert settings.model.device == "cuda"
    assert settings.model.max_input_tokens == 128
    assert settings.http.port == 9200
    assert settings.model.dtype == "auto"


def test_args_override_env_override_yaml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_yaml(
        tmp_path / "settings.yaml",
        {
            "model": {"device": "cuda", "max_input_tokens": 128},
            "http": {"port": 9200, "host": "10.0.0.1"},
            "cache": {"l1_max_entries": 5},
        },
    )
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("LINKEDIN_POSTS_HTTP__PORT", "9300")
    settings = AppSettings.load({"http": {"port": 9400}})
    assert settings.http.port == 9400  # args beat env and file
    assert settings.model.device == "cpu"  # env beats file
    assert settings.model.max_input_tokens == 128  # file beats defaults
    assert settings.http.host == "10.0.0.1"
    assert settings.cache.l1_max_entries == 5


def test_config_file_arg_beats_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = write_yaml(tmp_path / "env.yaml", {"http": {"port": 9001}})
    from_arg = write_yaml(tmp_path / "arg.yaml", {"http": {"port": 9002}})
    monkeypatch.setenv(CONFIG_FILE_ENV, str(from_env))
    assert AppSettings.load({"config_file": str(from_arg)}).http.port == 9002


def test_yaml_file_values_do_not_leak_into_later_loads(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "settings.yaml", {"http": {"port": 9200}})
    assert AppSettings.load({"config_file": str(config)}).http.port == 9200
    assert AppSettings.load().http.port == 8000


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("")
    assert AppSettings.load({"config_file": str(config)}) == AppSettings.load()


def test_yaml_file_must_be_a_mapping(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "list.yaml", ["not", "a", "mapping"])
    with pytest.raises(ValueError, match="mapping"):
        AppSettings.load({"config_file": str(config)})


def test_unknown_keys_are_rejected_everywhere(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bogus"):
        AppSettings.load({"bogus": 1})
    with pytest.raises(ValidationError, match="bogus"):
        AppSettings.load({"model": {"bogus": 1}})
    config = write_yaml(tmp_path / "settings.yaml", {"cache": {"bogus": 1}})
    with pytest.raises(ValidationError, match="bogus"):
        AppSettings.load({"config_file": str(config)})


# --- REDIS_URL ------------------------------------------------------------------------------


def test_redis_url_env_fills_cache_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    assert AppSettings.load().cache.redis_url == "redis://redis:6379/0"


def test_redis_url_env_beats_yaml_but_not_prefixed_env_or_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_yaml(tmp_path / "s.yaml", {"cache": {"redis_url": "redis://file:6379/0"}})
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    assert AppSettings.load().cache.redis_url == "redis://file:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://conventional:6379/0")
    assert AppSettings.load().cache.redis_url == "redis://conventional:6379/0"
    monkeypatch.setenv("LINKEDIN_POSTS_CACHE__REDIS_URL", "redis://prefixed:6379/0")
    assert AppSettings.load().cache.redis_url == "redis://prefixed:6379/0"
    settings = AppSettings.load({"cache": {"redis_url": "redis://args:6379/0"}})
    assert settings.cache.redis_url == "redis://args:6379/0"


def test_empty_redis_url_env_means_no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    assert AppSettings.load().cache.redis_url is None


# --- deployments ----------------------------------------------------------------------------


def test_each_part_runs_the_shared_model_unless_it_names_its_own() -> None:
    shared = {"model": "/models/shared", "device": "cpu", "max_input_tokens": 256}
    settings = AppSettings.load(
        {"model": shared, "part_models": {"title": {"model": "/models/small"}}}
    )
    title = settings.model_for("title")
    # What the part sets replaces the shared value; the rest is the shared model's.
    assert (title.model, title.device, title.max_input_tokens) == ("/models/small", "cpu", 256)
    assert settings.model_for("content") == settings.model
    assert post_model_id(settings) == (
        "title=/models/small;content=/models/shared;hashtags=/models/shared"
    )
    # One model for every part: the key's model id is that model's, as before part models.
    assert post_model_id(AppSettings.load({"model": shared})) == "/models/shared"
    with pytest.raises(ValidationError):
        AppSettings.load({"part_models": {"intro": {"model": "/models/x"}}})


def test_partial_deployment_override_keeps_other_defaults() -> None:
    defaults = AppSettings.load().deployments
    settings = AppSettings.load({"deployments": {"ContentModel": {"max_replicas": 4}}})
    content = settings.deployments["ContentModel"]
    assert content.max_replicas == 4
    assert content.model_dump() == {**defaults["ContentModel"].model_dump(), "max_replicas": 4}
    for name in EXPECTED_DEPLOYMENTS - {"ContentModel"}:
        assert settings.deployments[name] == defaults[name], name


def test_deployment_overrides_from_file_and_args_merge(tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "s.yaml",
        {"deployments": {"ContentModel": {"max_replicas": 4, "num_cpus": 2}}},
    )
    settings = AppSettings.load(
        {"config_file": str(config), "deployments": {"ContentModel": {"max_replicas": 6}}}
    )
    content = settings.deployments["ContentModel"]
    assert content.max_replicas == 6  # args win
    assert content.num_cpus == 2  # the file still counts for what args leave out


def test_deployment_override_as_options_object_keeps_other_defaults() -> None:
    defaults = AppSettings.load().deployments["TitleModel"]
    settings = AppSettings.load(
        {"deployments": {"TitleModel": DeploymentOptions(max_replicas=3, num_gpus=0.25)}}
    )
    title = settings.deployments["TitleModel"]
    assert (title.max_replicas, title.num_gpus) == (3, 0.25)
    assert title.num_cpus == defaults.num_cpus  # not DeploymentOptions' own default
    assert title.max_ongoing_requests == defaults.max_ongoing_requests


def test_unknown_deployment_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError) as info:
        AppSettings.load({"deployments": {"ContentModle": {"max_replicas": 4}}})
    message = str(info.value)
    assert "unknown deployments" in message
    assert "ContentModle" in message
    assert "ContentModel" in message  # and says what is known


@pytest.mark.parametrize(
    "override",
    [{"min_replicas": 5}, {"min_replicas": 3, "max_replicas": 2}],
)
def test_min_replicas_above_max_replicas_is_rejected(override: dict) -> None:
    with pytest.raises(ValidationError) as info:
        AppSettings.load({"deployments": {"HashtagModel": override}})
    message = str(info.value)
    assert "HashtagModel" in message
    assert "min_replicas" in message
    assert "exceeds max_replicas" in message


@pytest.mark.parametrize("queued", [0, -2])
def test_a_queue_serve_would_refuse_at_deploy_is_rejected_at_load(queued: int) -> None:
    with pytest.raises(ValidationError, match="max_queued_requests must be -1"):
        AppSettings.load({"deployments": {"Ingress": {"max_queued_requests": queued}}})
    assert DeploymentOptions(max_queued_requests=-1).max_queued_requests == -1
    assert DeploymentOptions(max_queued_requests=1).max_queued_requests == 1


@pytest.mark.parametrize("initial", [0, 5])
def test_initial_replicas_outside_bounds_is_rejected(initial: int) -> None:
    with pytest.raises(ValidationError, match="initial_replicas"):
        DeploymentOptions(min_replicas=1, max_replicas=4, initial_replicas=initial)


def test_serve_options_shape() -> None:
    options = DeploymentOptions(
        num_cpus=0.5,
        num_gpus=0.25,
        min_replicas=1,
        max_replicas=4,
        initial_replicas=2,
        target_ongoing_requests=8,
        max_ongoing_requests=64,
        max_queued_requests=256,
    ).serve_options(drain_s=42, retry_after_s=3)
    assert options["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.25}
    assert options["max_ongoing_requests"] == 64
    assert options["max_queued_requests"] == 256
    autoscaling = options["autoscaling_config"]
    assert {k: autoscaling[k] for k in ("min_replicas", "max_replicas", "initial_replicas")} == {
        "min_replicas": 1,
        "max_replicas": 4,
        "initial_replicas": 2,
    }
    assert autoscaling["target_ongoing_requests"] == 8
    assert "num_replicas" not in options  # autoscaling and a fixed count exclude each other
    assert options["graceful_shutdown_timeout_s"] == 42
    assert options["backpressure_config"] == {"status_code": 503, "retry_after_s": 3}
    autoscaling = DeploymentOptions().serve_options(drain_s=1, retry_after_s=1)[
        "autoscaling_config"
    ]
    assert "initial_replicas" not in autoscaling


@pytest.mark.parametrize("name", sorted(EXPECTED_DEPLOYMENTS))
def test_default_serve_options_are_accepted_by_serve(name: str) -> None:
    from ray import serve
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import DeploymentSchema

    settings = AppSettings.load()
    options = settings.serve_options(name)
    assert set(options) <= set(inspect.signature(serve.Deployment.options).parameters)
    AutoscalingConfig(**options["autoscaling_config"])
    DeploymentSchema.model_validate({"name": name, **options})


@pytest.mark.parametrize("timeout", [3, 300, 900])
def test_every_stage_drains_longer_than_the_request_timeout(timeout: float) -> None:
    # A replica force-killed mid-request is a plain-text 500 at the proxy: on a redeploy or a
    # scale-down every stage must outlive the longest request, and a caller what it calls.
    settings = AppSettings.load({"http": {"request_timeout_s": timeout}})
    drains = {name: settings.drain_s(name) for name in EXPECTED_DEPLOYMENTS}
    assert all(drain > timeout for drain in drains.values()), drains
    assert drains["Ingress"] > drains["CacheLookup"] > drains["ContentModel"]
    for model in ("TitleModel", "ContentModel", "HashtagModel", "Compiler"):
        assert drains["CacheLookup"] > drains[model]


def test_the_autoscaling_target_must_be_below_the_cap() -> None:
    with pytest.raises(ValidationError, match="target_ongoing_requests"):
        DeploymentOptions(max_ongoing_requests=32, target_ongoing_requests=32)


def test_the_drain_is_not_set_per_deployment() -> None:
    with pytest.raises(ValidationError, match="graceful_shutdown_timeout_s"):
        AppSettings.load({"deployments": {"Ingress": {"graceful_shutdown_timeout_s": 30}}})


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_configs_leave_deployment_options_to_the_settings(path: Path) -> None:
    # A Serve config's `deployments:` list overrides the code's options: the settings would
    # no longer be their one source (and a drain written there would escape the request
    # timeout it must follow). Configs change options under args.deployments instead.
    for app in load_serve_config(path)["applications"]:
        assert "deployments" not in app, path.name


# --- batching and generation sections -------------------------------------------------------


def test_generation_budgets_need_every_length() -> None:
    with pytest.raises(ValidationError, match="long"):
        AppSettings.load({"generation": {"content_max_new_tokens": {"short": 10, "medium": 20}}})


# --- config/*.yaml are valid Serve configs --------------------------------------------------


def load_serve_config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_config_validates_with_ray(path: Path) -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(load_serve_config(path))
    assert len(schema.applications) == 1
    # The builder: Serve calls it with the config's args (an Application takes none).
    assert schema.applications[0].import_path == "graph:build_app"


def settings_of(app: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppSettings:
    """The settings a Serve config's application builds the graph from."""
    for key, value in (app.get("runtime_env") or {}).get("env_vars", {}).items():
        monkeypatch.setenv(key, str(value))
    args = copy.deepcopy(app.get("args") or {})
    security = args.get("security") or {}
    if security.get("api_keys_file"):
        # The file is a secret mounted in production; stand in for it.
        keys = write_yaml(tmp_path / "api-keys.yaml", [{"name": "ci", "key": "k" * 32}])
        security["api_keys_file"] = str(keys)
    return AppSettings.load(args)


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_configs_give_serve_valid_options_for_the_six_deployments(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import DeploymentSchema

    for app in load_serve_config(path)["applications"]:
        settings = settings_of(app, tmp_path, monkeypatch)
        for name in EXPECTED_DEPLOYMENTS:
            options = settings.serve_options(name)
            autoscaling = options["autoscaling_config"]
            assert autoscaling["min_replicas"] <= autoscaling["max_replicas"], name
            AutoscalingConfig(**autoscaling)
            # At or above the cap Serve's autoscaler misjudges load (ray#24793, ray#20977).
            assert autoscaling["target_ongoing_requests"] < options["max_ongoing_requests"]
            assert "num_replicas" not in options, name
            DeploymentSchema.model_validate({"name": name, **options})


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_config_args_validate_with_app_settings(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for app in load_serve_config(path)["applications"]:
        settings = settings_of(app, tmp_path, monkeypatch)
        assert set(settings.deployments) == EXPECTED_DEPLOYMENTS
        assert settings.app_name  # loads without error and is usable
        env_redis = (app.get("runtime_env") or {}).get("env_vars", {}).get("REDIS_URL")
        assert settings.cache.redis_url == env_redis


def test_serve_yaml_caps_gpu_memory_to_its_gpu_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = load_serve_config(CONFIG_DIR / "serve.yaml")["applications"][0]
    settings = settings_of(app, tmp_path, monkeypatch)
    for name in MODEL_DEPLOYMENTS:
        assert settings.deployments[name].num_gpus == settings.model.gpu_memory_fraction == 0.25


# --- API keys ------------------------------------------------------------------------------

PLAIN_KEY = "plain-secret-key-0123456789"


@pytest.mark.parametrize(
    "keys",
    [
        [PLAIN_KEY],
        [{"name": "ci", "key": PLAIN_KEY}],
        [{"key": PLAIN_KEY, "rate_limit": "6/minute"}],
    ],
)
def test_plain_keys_in_arguments_are_refused_without_echoing_them(keys: list) -> None:
    # Serve's controller logs an application's args and `serve config` prints them.
    with pytest.raises(ValueError) as info:
        AppSettings.load({"security": {"auth_enabled": True, "api_keys": keys}})
    assert "security.api_keys[0]" in str(info.value)
    assert PLAIN_KEY not in str(info.value)


def test_keys_come_as_sha256_in_arguments_or_plain_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    digest = hashlib.sha256(PLAIN_KEY.encode()).hexdigest()
    by_hash = AppSettings.load({"security": {"api_keys": [{"name": "ci", "sha256": digest}]}})
    keys_file = write_yaml(tmp_path / "keys.yaml", [{"name": "file", "key": PLAIN_KEY}])
    by_file = AppSettings.load({"security": {"api_keys_file": str(keys_file)}})
    monkeypatch.setenv("LINKEDIN_POSTS_SECURITY__API_KEYS", f'["{PLAIN_KEY}"]')
    by_env = AppSettings.load()
    for settings in (by_hash, by_file, by_env):
        assert [k.sha256 for k in settings.security.all_keys()] == [digest]
        assert PLAIN_KEY not in settings.model_dump_json()


# --- serve build ---------------------------------------------------------------------------


def test_serve_build_writes_a_config_serve_accepts(tmp_path: Path) -> None:
    """`serve build graph:app` (an Application, not the builder: ray#37819) writes a config
    with every deployment and its options from the settings."""
    import subprocess
    import sys

    from ray.serve.schema import ServeDeploySchema

    out = tmp_path / "built.yaml"
    serve = Path(sys.executable).with_name("serve")
    subprocess.run([str(serve), "build", "graph:app", "-o", str(out)], check=True, timeout=300)
    config = load_serve_config(out)
    schema = ServeDeploySchema.model_validate(config)
    [app] = schema.applications
    assert app.import_path == "graph:app"
    built = {d["name"]: d for d in config["applications"][0]["deployments"]}
    assert set(built) == EXPECTED_DEPLOYMENTS
    settings = AppSettings.load()
    for name, deployment in built.items():
        assert deployment["graceful_shutdown_timeout_s"] == settings.drain_s(name)
        assert deployment["max_ongoing_requests"] == settings.deployments[name].max_ongoing_requests
