"""Cache keys: a hash of everything that changes a post, and nothing that doesn't."""

from __future__ import annotations

import hashlib

import orjson

from deployments.post.prompts import PROMPT_VERSION
from deployments.schemas import PostRequest


def normalise_topic(topic: str) -> str:
    return " ".join(topic.casefold().split())


def cache_key(request: PostRequest, model_id: str) -> str:
    """Same normalised request, model and prompt version: same key. `use_cache` is not part."""
    fields = {
        "topic": normalise_topic(request.topic),
        "tone": request.tone.value,
        "audience": " ".join(request.audience.split()) if request.audience else None,
        "length": request.length.value,
        "num_hashtags": request.num_hashtags,
        "call_to_action": request.call_to_action,
        "seed": request.seed,
        "model": model_id,
        "prompt_version": PROMPT_VERSION,
    }
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()
