"""Unit tests for deployments/post/textproc.py: the pure text clean-up behind the compiler."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.post.textproc import (
    clean_model_text,
    cut_to_band,
    drop_repeats,
    fallback_tags,
    is_prompt_echo,
    parse_hashtags,
    strip_label,
    strip_markup,
    strip_placeholders,
    strip_quotes,
    strip_special_tokens,
    to_camel_tag,
    unique_tags,
)

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TAG_BODY = re.compile(r"[^\W_]+")


def squash(text: str) -> str:
    return " ".join(text.split())


# --- strip_special_tokens -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<|im_start|>assistant\nHello there<|im_end|>", "Hello there"),
        ("<|im_start|>system\nBe nice<|im_end|>\n<|im_start|>user\nHi", "Be nice Hi"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>", "Hello"),
        ("<s>[INST] Write a post [/INST] Done</s>", "Write a post Done"),
        ("Great<|endoftext|>", "Great"),
        ("a<unk>b<pad>c", "a b c"),
    ],
)
def test_strip_special_tokens_removes_chat_template_tokens(raw: str, expected: str) -> None:
    assert squash(strip_special_tokens(raw)) == expected


@pytest.mark.parametrize(
    "text", ["Ship it | then iterate", "x < y and y > z", "The assistant role matters"]
)
def test_strip_special_tokens_leaves_ordinary_text(text: str) -> None:
    assert strip_special_tokens(text) == text


# --- strip_markup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ('<a href="https://example.com">Read more</a>', "Read more"),
        ("Before<br/>after", "Before after"),
        ("<!-- a comment -->Visible", "Visible"),
        ("Keep <!--\nmulti-line\n--> this", "Keep this"),
        ("&lt;b&gt;Bold&lt;/b&gt; claim", "Bold claim"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "alert(1)"),
        ("Q&amp;A with &quot;experts&quot;", 'Q&A with "experts"'),
        ("**Bold** and __strong__ and *em* and ~~gone~~", "Bold and strong and em and gone"),
        ("Run `make test` or ```pytest```", "Run make test or pytest"),
        ("## Why it matters\nBecause.", "Why it matters Because."),
        ("# Title", "Title"),
        ("[our guide](https://example.com/guide) and ![a chart](c.png)", "our guide and a chart"),
        ("* first\n+ second\n1. third\n2) fourth", "first second third fourth"),
    ],
)
def test_strip_markup_removes_html_and_markdown(raw: str, expected: str) -> None:
    assert squash(strip_markup(raw)) == expected


def test_strip_markup_keeps_hashtags_and_plain_text() -> None:
    assert strip_markup("Ship small changes. #DevOps") == "Ship small changes. #DevOps"


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["<", ">", "&lt;", "&gt;", "<b>", "</b>", "<!--", "-->", "&amp;"]),
            st.text(max_size=10),
        ),
        max_size=30,
    ).map("".join)
)
def test_strip_markup_never_leaves_angle_brackets(raw: str) -> None:
    out = strip_markup(raw)
    assert "<" not in out
    assert ">" not in out


# --- strip_label ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('Title: "Code review is a speed multiplier"', '"Code review is a speed multiplier"'),
        ("TITLE:Remote work", "Remote work"),
        ("Hook line - Ship small", "Ship small"),
        ("Post title: Remote work", "Remote work"),
        ("Headline 2: Remote work", "Remote work"),
        ("Hashtags: #AI #ML", "#AI #ML"),
        ("Title: Body: Remote work", "Remote work"),
        ("  Caption \u2014 Remote work", "Remote work"),
        ('The headline is: "Transform your business"', '"Transform your business"'),
        ('The headline: "Writing a failing test"', '"Writing a failing test"'),
    ],
)
def test_strip_label_removes_leading_labels(line: str, expected: str) -> None:
    assert strip_label(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "Post-pandemic hiring is hard.",
        "Content-first teams win.",
        "Subject-matter experts review faster.",
        "Titles matter: here is why.",
        "Content is king.",
        "The title: a lesson.",
    ],
)
def test_strip_label_leaves_sentences_that_only_start_like_a_label(line: str) -> None:
    assert strip_label(line) == line


# --- strip_quotes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Foo bar"', "Foo bar"),
        ("\u201cFoo bar\u201d", "Foo bar"),
        ("'\"Foo bar\"'", "Foo bar"),
        ('  "Foo bar"  ', "Foo bar"),
        ('"Foo bar', "Foo bar"),
        ('Foo bar"', "Foo bar"),
        ("\"Run it alone, you can't.", "Run it alone, you can't."),
        ("\u201cOpen but never closed", "Open but never closed"),
        ("\u00abFoo\u00bb", "Foo"),
        ('"Code review" is underrated', '"Code review" is underrated'),
        ("Don't stop", "Don't stop"),
        ("", ""),
    ],
)
def test_strip_quotes(text: str, expected: str) -> None:
    assert strip_quotes(text) == expected


# --- is_prompt_echo -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Sure! Here is a LinkedIn post:",
        "Sure, here's a LinkedIn post about remote work:",
        "Certainly! Here are 5 hashtags:",
        "Of course! Here is the post:",
        "Here\u2019s your hook:",
        "Sure!",
        "Absolutely.",
        "Sure thing, I'd be happy to help!",
        "Topic: Remote work",
        "<request>",
        "Write one professional and confident hook line for a LinkedIn post.",
        "\"Here's a potential LinkedIn post",
        "\u201cTopic: Remote work\u201d",
    ],
)
def test_is_prompt_echo_catches_echoes(line: str) -> None:
    assert is_prompt_echo(line)


@pytest.mark.parametrize(
    "line",
    [
        "Code review is a speed multiplier.",
        "Absolutely nobody likes slow code reviews.",
        "Of course, feedback matters.",
        "Here is what I learned after ten years of code review.",
        "Listen to your team before you write the plan.",
        '"Here is what I learned," she said.',
    ],
)
def test_is_prompt_echo_keeps_ordinary_sentences(line: str) -> None:
    assert not is_prompt_echo(line)


# --- drop_repeats ---------------------------------------------------------------------------


def test_drop_repeats_drops_repeated_lines_ignoring_case_and_punctuation() -> None:
    lines = ["Ship small changes.", "ship small changes", "Ship, small changes!", "Then review."]
    assert drop_repeats(lines) == ["Ship small changes.", "Then review."]


def test_drop_repeats_drops_repeated_sentences_inside_later_lines() -> None:
    lines = [
        "Code review catches bugs early. It also spreads knowledge.",
        "Code review catches bugs early. Teams ship faster as a result.",
    ]
    assert drop_repeats(lines) == [
        "Code review catches bugs early. It also spreads knowledge.",
        "Teams ship faster as a result.",
    ]


def test_drop_repeats_keeps_short_repeated_sentences_and_blank_lines() -> None:
    lines = ["Yes. Small batches win.", "", "Yes. Reviews stay quick.", ""]
    assert drop_repeats(lines) == ["Yes. Small batches win.", "", "Yes. Reviews stay quick.", ""]


def test_drop_repeats_keeps_order_of_distinct_lines() -> None:
    lines = ["Third point.", "First point.", "Second point."]
    assert drop_repeats(lines) == lines


# --- cut_to_band ----------------------------------------------------------------------------

SENTENCE = "One sentence here."  # 18 characters; with the space, one every 19


def test_cut_to_band_cuts_at_last_sentence_end_inside_band() -> None:
    text = " ".join([SENTENCE] * 10)
    out = cut_to_band(text, 50, 100)
    # Sentence ends at 18, 37, 56, 75, 94, 113: the last one that fits is 94.
    assert out == text[:94]
    assert out.endswith(".")


def test_cut_to_band_keeps_text_that_fits() -> None:
    text = "Short. And sweet!"
    assert cut_to_band(text, 5, 100) == text
    assert cut_to_band(f"  {text}\n", 5, 100) == text


def test_cut_to_band_drops_a_dangling_fragment_when_enough_is_left() -> None:
    assert cut_to_band("First sentence is here. and then", 10, 100) == "First sentence is here."


def test_cut_to_band_closes_a_dangling_fragment_when_dropping_it_leaves_too_little() -> None:
    out = cut_to_band("First sentence is here. and then", 30, 100)
    assert out == "First sentence is here. and then."


def test_cut_to_band_without_boundary_cuts_at_a_word_and_closes() -> None:
    text = " ".join(["word"] * 100)
    out = cut_to_band(text, 50, 100)
    assert len(out) <= 100
    assert out.endswith("word.")
    assert set(out[:-1].split()) == {"word"}
    assert len(out) > 50


def test_cut_to_band_without_boundary_drops_trailing_joiners() -> None:
    text = "alpha beta, gamma delta, " * 20
    out = cut_to_band(text, 50, 60)
    assert len(out) <= 60
    assert re.search(r"[a-z]\.$", out), out


def test_cut_to_band_text_exactly_max_long_without_full_stop_stays_within_max() -> None:
    text = " ".join(["word"] * 20)  # 99 characters, no sentence end
    out = cut_to_band(text, 10, len(text))
    assert len(out) <= len(text)
    assert out.endswith(".")


def test_cut_to_band_of_empty_text_is_empty() -> None:
    assert cut_to_band("   ", 10, 100) == ""


@PROPERTY_SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=400),
        st.lists(
            st.sampled_from(["word", " ", ".", "!", "?", "\n\n", ",", "-", '"', "\u2026"]),
            max_size=150,
        ).map("".join),
    ),
    min_chars=st.integers(0, 300),
    max_chars=st.integers(2, 300),
)
def test_cut_to_band_never_exceeds_max(text: str, min_chars: int, max_chars: int) -> None:
    out = cut_to_band(text, min(min_chars, max_chars), max_chars)
    assert len(out) <= max_chars
    if text.strip() and len(text.strip()) <= max_chars and text.strip()[-1] in ".!?":
        assert out == text.strip()


# --- to_camel_tag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("machine_learning", "MachineLearning"),
        ("machine learning", "MachineLearning"),
        ("DevOps", "DevOps"),
        ("devOps", "DevOps"),
        ("AI", "AI"),
        ("ai", "Ai"),
        ("web3", "Web3"),
        ("remote-work!", "RemoteWork"),
        ("café", "Café"),
    ],
)
def test_to_camel_tag(word: str, expected: str) -> None:
    assert to_camel_tag(word) == expected


@pytest.mark.parametrize("word", ["", "!!!", "2024", "___", "a" * 41])
def test_to_camel_tag_rejects_words_without_a_usable_tag(word: str) -> None:
    assert to_camel_tag(word) is None


@PROPERTY_SETTINGS
@given(st.text(max_size=60))
def test_to_camel_tag_is_letters_and_digits_with_a_letter(word: str) -> None:
    tag = to_camel_tag(word)
    if tag is not None:
        assert TAG_BODY.fullmatch(tag), tag
        assert any(c.isalpha() for c in tag)
        assert len(tag) <= 40


def test_to_camel_tag_letter_that_upper_cases_to_a_combining_sequence() -> None:
    # "\u01f0".upper() is "J" + U+030C (a combining mark, not a word character).
    tag = to_camel_tag("\u01f0ava")
    assert tag is not None
    assert TAG_BODY.fullmatch(tag)


# --- parse_hashtags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#AI #MachineLearning #dev_ops", ["AI", "MachineLearning", "DevOps"]),
        ("#AI, #ML; #Cloud", ["AI", "ML", "Cloud"]),
        ("ai, cloud computing; devops", ["Ai", "CloudComputing", "Devops"]),
        # Prose is not a list of tags; nor are stop words.
        ("I'm ready when you are", []),
        ("#The #When #AI", ["AI"]),
        ("1. DevOps\n2. Cloud", ["DevOps", "Cloud"]),
        ("<|im_start|>assistant\n#AI #ML<|im_end|>", ["AI", "ML"]),
        ("Sure! Here are some hashtags:\nAI, Cloud", ["AI", "Cloud"]),
        ("Hashtags: AI, ML", ["AI", "ML"]),
        ("Sure! Here are 5 hashtags: #AI #ML", ["AI", "ML"]),
        ("**#AI** #ML", ["AI", "ML"]),
        ("#2024 #AI", ["AI"]),
        # A link's pieces are no tags; nor are the prompt's own words.
        ("https://www.linkedin.com/posts/f3170482 #AI", ["AI"]),
        ("www.example.com/x, cloud", ["Cloud"]),
        ("#Request #Topic #AI", ["AI"]),
        ("#Https #Www #AI", ["AI"]),
        ("", []),
    ],
)
def test_parse_hashtags(raw: str, expected: list[str]) -> None:
    assert parse_hashtags(raw) == expected


# --- unique_tags ----------------------------------------------------------------------------


def test_unique_tags_drops_case_insensitive_duplicates_keeping_first() -> None:
    assert unique_tags(["AI", "ai", "Ml", "ML", "Cloud"], 10) == ["AI", "Ml", "Cloud"]


def test_unique_tags_stops_at_limit() -> None:
    assert unique_tags(["A1", "B1", "a1", "C1"], 2) == ["A1", "B1"]
    assert unique_tags(iter(["A1", "B1"]), 5) == ["A1", "B1"]


def test_unique_tags_with_limit_zero_is_empty() -> None:
    assert unique_tags(["AI", "ML"], 0) == []


# --- fallback_tags --------------------------------------------------------------------------


def test_fallback_tags_keywords_then_pairs_then_extra() -> None:
    tags = fallback_tags("Why code review makes teams faster", ["LinkedIn"])
    assert tags == [
        "Code",
        "Review",
        "Teams",
        "Faster",
        "CodeReview",
        "ReviewTeams",
        "TeamsFaster",
        "LinkedIn",
    ]


def test_fallback_tags_skip_stopwords_single_letters_and_numbers() -> None:
    assert fallback_tags("How a 10x team of the future works with AI", [])[:5] == [
        "10x",
        "Team",
        "Future",
        "Works",
        "AI",
    ]
    assert fallback_tags("Plan B for 2025 launches", []) == ["Plan", "Launches", "PlanLaunches"]


def test_fallback_tags_of_topic_without_keywords_are_the_extra_tags() -> None:
    assert fallback_tags("what is this?", ["Career", "Growth"]) == ["Career", "Growth"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Visit [insert link] today.", "Visit today."),
        ("Thanks, [Your Name]!", "Thanks,!"),
        ("Follow @TechJets for more.", "Follow for more."),
        ("Mail jo@example.com or @team.", "Mail jo@example.com or."),
        ("Nothing to strip here.", "Nothing to strip here."),
    ],
)
def test_strip_placeholders(raw: str, expected: str) -> None:
    assert strip_placeholders(raw) == expected


def test_a_fragment_after_a_paragraph_break_is_not_a_sentence_end() -> None:
    body = "Teams that review code ship faster. They also learn from each other!\n\nL"
    assert (
        cut_to_band(body, 10, 500)
        == "Teams that review code ship faster. They also learn from each other!"
    )


@pytest.mark.parametrize(
    "line",
    [
        "Here's a possible response for the post:",
        "I have already sent you my answer to your request.",
        'The title could be "Unleashing Your Potential"',
    ],
)
def test_talk_about_the_request_is_a_prompt_echo(line: str) -> None:
    assert clean_model_text(f"Reviews make teams faster.\n{line}") == "Reviews make teams faster."


def test_an_invented_conversation_ends_the_text() -> None:
    raw = "Reviews make teams faster.\n[Request]\nChat History:\nJen wrote: hi"
    assert clean_model_text(raw) == "Reviews make teams faster."
