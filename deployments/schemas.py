"""The public API's request and response models, and the messages passed between deployments."""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Control characters other than tab and newline have no place in a post and break terminals/logs.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional embeddings, overrides and isolates reorder what a reader sees ("Read more
# \u202etxt.exe" displays as "Read more exe.txt"): refused, since no post needs them.
_BIDI_CONTROLS = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# The zero-width joiner and non-joiner are parts of emoji sequences and of Persian and Indic
# spelling: kept. Every other format character (zero-width space, word joiner, BOM, soft hyphen,
# tag characters) is invisible and is dropped.
_KEPT_FORMAT_CHARS = frozenset("\u200c\u200d")

LINKEDIN_MAX_CHARS = 3000
TITLE_MAX_CHARS = 150
MAX_SEED = 2**63 - 1


class Tone(str, Enum):
    professional = "professional"
    casual = "casual"
    inspirational = "inspirational"
    educational = "educational"
    humorous = "humorous"


class PostLength(str, Enum):
    short = "short"
    medium = "medium"
    long = "long"


# Characters of body per length: (minimum, maximum).
LENGTH_BANDS: dict[PostLength, tuple[int, int]] = {
    PostLength.short: (150, 1000),
    PostLength.medium: (300, 1900),
    PostLength.long: (600, 2900),
}


def _visible_length(text: str) -> int:
    """Characters a reader sees: not whitespace and not format characters."""
    return sum(1 for c in text if not c.isspace() and unicodedata.category(c) != "Cf")


def _clean_text(value: str | None, *, field: str, optional: bool) -> str | None:
    if value is None:
        return None
    # A lone surrogate ("\ud800" is valid JSON) cannot be encoded as UTF-8: the tokenizer, the
    # cache and the logs would all fail on it.
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(f"{field} must be valid Unicode text (it has a lone surrogate)")
    if _CONTROL_CHARS.search(value):
        raise ValueError(f"{field} must not contain control characters")
    if _BIDI_CONTROLS.search(value):
        raise ValueError(f"{field} must not contain bidirectional control characters")
    value = "".join(
        c for c in value if unicodedata.category(c) != "Cf" or c in _KEPT_FORMAT_CHARS
    ).strip()
    if optional and not _visible_length(value):
        return None
    return value


class PostRequest(BaseModel):
    """What a user asks for."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(..., description="What the post is about (3-500 characters after trimming).")
    tone: Tone = Tone.professional
    audience: str | None = Field(None, description="Who the post is for.")
    length: PostLength = PostLength.medium
    num_hashtags: int = Field(3, ge=0, le=10)
    call_to_action: str | None = Field(None, description="When given, the body ends with it.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Same request + seed, same post.")
    use_cache: bool = Field(True, description="False skips cache reads; the post is still stored.")

    @field_validator("topic", mode="before")
    @classmethod
    def _topic(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        cleaned = _clean_text(value, field="topic", optional=False) or ""
        if not 3 <= len(cleaned) <= 500:
            raise ValueError(
                f"topic must be 3 to 500 characters after trimming, got {len(cleaned)}"
            )
        if _visible_length(cleaned) < 3:
            raise ValueError("topic must have at least 3 visible characters")
        return cleaned

    @field_validator("audience", "call_to_action", mode="before")
    @classmethod
    def _optional_text(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        value = _clean_text(value, field=info.field_name, optional=True)
        if value is not None and len(value) > 200:
            raise ValueError(f"{info.field_name} must be at most 200 characters, got {len(value)}")
        return value


class BatchPostRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[PostRequest] = Field(..., min_length=1, max_length=32)


CacheLayer = Literal["l1", "l2", "l3"]


class CacheInfo(BaseModel):
    hit: bool = False
    layer: CacheLayer | None = None
    key: str | None = Field(None, description="Pass to DELETE /v1/cache?key=... to drop it.")


class PostMetadata(BaseModel):
    characters: int
    words: int
    reading_time_seconds: int
    model: str
    cache: CacheInfo = CacheInfo()
    timings_ms: dict[str, float] = Field(default_factory=dict)
    request_id: str = ""


class Post(BaseModel):
    """A finished post, ready to paste into LinkedIn."""

    id: str
    title: str = Field(..., description="The hook LinkedIn shows before 'see more'.")
    content: str
    hashtags: list[str]
    text: str = Field(..., description="Title, body and hashtags assembled (at most 3000 chars).")
    metadata: PostMetadata


class BatchPostResponse(BaseModel):
    posts: list[Post]


class WarmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[PostRequest] = Field(..., min_length=1, max_length=256)


class WarmResponse(BaseModel):
    requested: int
    generated: int
    already_cached: int


class CacheDeleted(BaseModel):
    deleted: str = Field(..., description="'all', or the key that was dropped.")


# ---- Between deployments -------------------------------------------------------------------


class PostLookup(BaseModel):
    """Ingress -> CacheLookup: one request the Ingress could not answer, and its cache key.
    `missed`: the layers the Ingress read for it and found nothing in (it counted that read for
    the popular-entry refresh), on node `node_id` (its L3 is that node's disk)."""

    request: PostRequest
    key: str
    missed: list[CacheLayer] = Field(default_factory=list)
    node_id: str = ""


class CachedPost(BaseModel):
    """A post as the cache answered it: `layer` None when it was written for this request."""

    post: Post
    layer: CacheLayer | None
    key: str
    lookup_ms: float


PostPart = Literal["title", "content", "hashtags"]
# The parts of a post, in the order they are written and assembled.
PARTS: tuple[PostPart, ...] = ("title", "content", "hashtags")


class GenerationJob(BaseModel):
    """One prompt for a model deployment: chat messages plus its decoding budget."""

    messages: list[dict[str, str]]
    user_text: list[str] = Field(
        default_factory=list,
        description="The user's text as it appears in the messages (topic, audience): what is "
        "cut, by tokens, when the prompt is over model.max_input_tokens.",
    )
    max_new_tokens: int = Field(..., ge=1)
    min_new_tokens: int = Field(0, ge=0)
    seed: int = Field(..., ge=0)


class GenerationResult(BaseModel):
    text: str
    new_tokens: int
    elapsed_ms: float  # from the job reaching the engine to its last token
    batch_size: int
    queue_ms: float = 0.0  # waiting to join the batch
    prefill_ms: float = 0.0  # its prompt through the model
    first_token_ms: float = 0.0  # from reaching the engine to its first token
    prompt_tokens: int = 0  # its prompt's tokens (a reused prefix included)

    @property
    def decode_ms(self) -> float:
        """From its first token to its last."""
        return self.elapsed_ms - self.first_token_ms

    @property
    def per_token_ms(self) -> float:
        """Decode time per output token after the first (time per output token)."""
        return self.decode_ms / max(1, self.new_tokens - 1)


# ---- Streaming: what crosses the graph while a post is written (POST /v1/posts/stream) ----------


class PartPiece(BaseModel):
    """New text of one part, as its model wrote it (raw: the Ingress cleans it for the client)."""

    part: PostPart
    text: str


class PartPieces(BaseModel):
    """Pieces of a post's parts that came together, each part's joined in order: what
    CacheLookup sends the Ingress as one object."""

    pieces: list[PartPiece]

    @classmethod
    def joined(cls, pieces: list[PartPiece]) -> PartPieces:
        texts: dict[PostPart, str] = {}
        for piece in pieces:
            texts[piece.part] = texts.get(piece.part, "") + piece.text
        return cls(pieces=[PartPiece(part=part, text=text) for part, text in texts.items()])


class PostWriting(BaseModel):
    """CacheLookup's first answer to a stream that missed: the post is being written now (pieces
    follow only when this request's writer is the one writing it, not a single-flight follower)."""

    key: str


StreamEventName = Literal["meta", "title", "content", "hashtags", "post", "error"]


class StreamEvent(BaseModel):
    """One server-sent event of POST /v1/posts/stream, and one item of the `stream` handle
    method: `meta` (request id, cache key, hit and layer), pieces of a part's text (`title`,
    `content`, `hashtags`: {"text": ...}), then `post` (the Post) or `error` (the error body)."""

    event: StreamEventName
    data: dict[str, Any]
