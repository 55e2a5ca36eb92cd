"""Unit tests for deployments/schemas.py: what the API accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.schemas import (
    LENGTH_BANDS,
    LINKEDIN_MAX_CHARS,
    MAX_SEED,
    BatchPostRequest,
    PostLength,
    PostRequest,
    Tone,
)

TOPIC = "Why code review makes teams faster"


def errors_for(**fields) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        PostRequest(**fields)
    return info.value.errors()


def error_fields(**fields) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in errors_for(**fields)}


# --- topic ----------------------------------------------------------------------------------


def test_minimal_request_gets_the_defaults() -> None:
    request = PostRequest(topic=TOPIC)
    assert request.topic == TOPIC
    assert request.tone is Tone.professional
    assert request.length is PostLength.medium
    assert request.num_hashtags == 3
    assert request.use_cache is True
    assert request.audience is None
    assert request.call_to_action is None
    assert request.seed is None


def test_topic_is_trimmed() -> None:
    assert PostRequest(topic="  \t Remote work \n ").topic == "Remote work"


def test_topic_keeps_inner_tabs_and_newlines() -> None:
    assert PostRequest(topic="Remote\twork\nand focus").topic == "Remote\twork\nand focus"


@pytest.mark.parametrize("topic", ["abc", "a" * 500, " " * 10 + "a" * 500 + " " * 10, "  abc  "])
def test_topic_length_3_to_500_after_trimming_is_accepted(topic: str) -> None:
    assert PostRequest(topic=topic).topic == topic.strip()


@pytest.mark.parametrize("topic", ["", "   ", "ab", "  ab  ", "a" * 501, "\n\t\n"])
def test_topic_length_outside_3_to_500_is_rejected(topic: str) -> None:
    errors = errors_for(topic=topic)
    assert [e["loc"] for e in errors] == [("topic",)]
    assert "3 to 500 characters" in errors[0]["msg"]


def test_topic_is_required_and_must_be_a_string() -> None:
    assert error_fields() == {"topic"}
    assert error_fields(topic=12345) == {"topic"}
    assert error_fields(topic=None) == {"topic"}


@pytest.mark.parametrize(
    "bad", ["\x00", "\x07", "\x1b[31m", "\r", "\x0b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029"]
)
def test_control_characters_are_rejected(bad: str) -> None:
    for field in ("topic", "audience", "call_to_action"):
        fields = {"topic": TOPIC, field: f"Remote {bad}work"}
        errors = errors_for(**fields)
        assert [e["loc"] for e in errors] == [(field,)]
        assert "control characters" in errors[0]["msg"]


def test_control_characters_are_rejected_even_when_only_at_the_ends() -> None:
    # Trimming must not hide them: they are checked before the value is stripped.
    assert error_fields(topic="Remote work\x00") == {"topic"}


@pytest.mark.parametrize("field", ["topic", "audience", "call_to_action"])
def test_a_lone_surrogate_is_a_422_naming_the_field(field: str) -> None:
    # '"Reliability \\ud800 testing"' is valid JSON; its string cannot be encoded as UTF-8.
    import json

    body = json.loads('{"x": "Reliability \\ud800 testing"}')
    errors = errors_for(**{"topic": TOPIC, field: body["x"]})
    assert [e["loc"] for e in errors] == [(field,)]
    assert "lone surrogate" in errors[0]["msg"]


@pytest.mark.parametrize("bidi", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200f", "\u061c"])
def test_bidirectional_controls_are_rejected(bidi: str) -> None:
    for field in ("topic", "audience", "call_to_action"):
        errors = errors_for(**{"topic": TOPIC, field: f"Read more {bidi}txt.exe"})
        assert [e["loc"] for e in errors] == [(field,)]
        assert "bidirectional" in errors[0]["msg"]


def test_invisible_format_characters_are_dropped() -> None:
    request = PostRequest(
        topic="Zero\u200bwidth\ufeff topic\u2060",
        audience="\u00adengineers",
        call_to_action="Read more\U000e0041",
    )
    assert request.topic == "Zerowidth topic"
    assert request.audience == "engineers"
    assert request.call_to_action == "Read more"
    # Joiners are kept: emoji sequences and Persian spelling need them.
    family = "Teams \U0001f469\u200d\U0001f4bb and \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert PostRequest(topic=family).topic == family


@pytest.mark.parametrize(
    "invisible", ["\u200b\u200b\u200b", "\u200d\u200d\u200d\u200d", "a\u200d\u200db"]
)
def test_a_topic_without_three_visible_characters_is_rejected(invisible: str) -> None:
    errors = errors_for(topic=invisible)
    assert [e["loc"] for e in errors] == [("topic",)]


def test_an_invisible_audience_is_no_audience() -> None:
    assert PostRequest(topic=TOPIC, audience="\u200b\u200d").audience is None


# --- enums ----------------------------------------------------------------------------------


def test_tone_and_length_values() -> None:
    assert {t.value for t in Tone} == {
        "professional",
        "casual",
        "inspirational",
        "educational",
        "humorous",
    }
    assert {p.value for p in PostLength} == {"short", "medium", "long"}


@pytest.mark.parametrize("tone", [t.value for t in Tone])
def test_every_tone_is_accepted_from_its_string(tone: str) -> None:
    assert PostRequest(topic=TOPIC, tone=tone).tone is Tone(tone)


@pytest.mark.parametrize("length", [p.value for p in PostLength])
def test_every_length_is_accepted_from_its_string(length: str) -> None:
    assert PostRequest(topic=TOPIC, length=length).length is PostLength(length)


@pytest.mark.parametrize(("field", "value"), [("tone", "angry"), ("length", "huge")])
def test_unknown_enum_values_are_rejected(field: str, value: str) -> None:
    assert error_fields(topic=TOPIC, **{field: value}) == {field}


def test_every_length_has_a_band_within_linkedin_limit() -> None:
    assert set(LENGTH_BANDS) == set(PostLength)
    for low, high in LENGTH_BANDS.values():
        assert 0 < low < high < LINKEDIN_MAX_CHARS
    assert (
        LENGTH_BANDS[PostLength.short][1]
        < LENGTH_BANDS[PostLength.medium][1]
        < LENGTH_BANDS[PostLength.long][1]
    )


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 10])
def test_num_hashtags_0_to_10_is_accepted(n: int) -> None:
    assert PostRequest(topic=TOPIC, num_hashtags=n).num_hashtags == n


@pytest.mark.parametrize("n", [-1, 11, 100])
def test_num_hashtags_outside_0_to_10_is_rejected(n: int) -> None:
    assert error_fields(topic=TOPIC, num_hashtags=n) == {"num_hashtags"}


@pytest.mark.parametrize("seed", [0, 42, MAX_SEED])
def test_seed_at_least_zero_is_accepted(seed: int) -> None:
    assert PostRequest(topic=TOPIC, seed=seed).seed == seed


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1])
def test_seed_out_of_range_is_rejected(seed: int) -> None:
    assert error_fields(topic=TOPIC, seed=seed) == {"seed"}


# --- optional text --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["audience", "call_to_action"])
def test_optional_text_is_trimmed(field: str) -> None:
    request = PostRequest(topic=TOPIC, **{field: "  Engineering managers \n"})
    assert getattr(request, field) == "Engineering managers"


@pytest.mark.parametrize("field", ["audience", "call_to_action"])
@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
def test_empty_optional_text_becomes_none(field: str, empty: str) -> None:
    assert getattr(PostRequest(topic=TOPIC, **{field: empty}), field) is None


@pytest.mark.parametrize("field", ["audience", "call_to_action"])
def test_optional_text_up_to_200_characters(field: str) -> None:
    assert getattr(PostRequest(topic=TOPIC, **{field: "a" * 200}), field) == "a" * 200
    # Surrounding whitespace does not count.
    assert getattr(PostRequest(topic=TOPIC, **{field: f"  {'a' * 200}  "}), field) == "a" * 200
    errors = errors_for(topic=TOPIC, **{field: "a" * 201})
    assert [e["loc"] for e in errors] == [(field,)]
    assert "at most 200 characters" in errors[0]["msg"]


# --- shape ----------------------------------------------------------------------------------


def test_extra_fields_are_forbidden() -> None:
    errors = errors_for(topic=TOPIC, hashtags=3)
    assert [(e["loc"], e["type"]) for e in errors] == [(("hashtags",), "extra_forbidden")]


def test_request_from_json() -> None:
    request = PostRequest.model_validate_json(
        '{"topic": " Remote work ", "tone": "casual", "length": "short", "num_hashtags": 0,'
        ' "audience": "", "call_to_action": "Follow me", "seed": 7, "use_cache": false}'
    )
    assert request.model_dump(mode="json") == {
        "topic": "Remote work",
        "tone": "casual",
        "audience": None,
        "length": "short",
        "num_hashtags": 0,
        "call_to_action": "Follow me",
        "seed": 7,
        "use_cache": False,
    }


# --- batch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 32])
def test_batch_of_1_to_32_is_accepted(n: int) -> None:
    batch = BatchPostRequest(requests=[{"topic": f"{TOPIC} {i}"} for i in range(n)])
    assert len(batch.requests) == n
    assert all(isinstance(r, PostRequest) for r in batch.requests)


@pytest.mark.parametrize("n", [0, 33])
def test_batch_outside_1_to_32_is_rejected(n: int) -> None:
    with pytest.raises(ValidationError) as info:
        BatchPostRequest(requests=[{"topic": TOPIC}] * n)
    assert [e["loc"] for e in info.value.errors()] == [("requests",)]


def test_batch_validates_each_request_and_names_it() -> None:
    with pytest.raises(ValidationError) as info:
        BatchPostRequest(requests=[{"topic": TOPIC}, {"topic": "ab"}])
    assert [e["loc"] for e in info.value.errors()] == [("requests", 1, "topic")]


def test_batch_extra_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError):
        BatchPostRequest(requests=[{"topic": TOPIC}], parallel=True)
    with pytest.raises(ValidationError):
        BatchPostRequest()
