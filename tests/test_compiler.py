"""Unit tests for deployments/post/compiler.py: the API contract holds for any model output."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.post.compiler import PostCompiler
from deployments.schemas import (
    LENGTH_BANDS,
    LINKEDIN_MAX_CHARS,
    TITLE_MAX_CHARS,
    Post,
    PostLength,
    PostRequest,
    Tone,
)

MODEL = "test-model"
TOPIC = "Why code review makes teams faster"
HASHTAG = re.compile(r"^#[^\W_]+$")
SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>|</?s>|\[/?INST\]")
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>|<!--")
TITLE_LABEL = re.compile(r"^\s*(?:post\s+)?(?:title|headline|hook)\b\s*:", re.IGNORECASE)
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def compiler() -> PostCompiler:
    return PostCompiler(MODEL)


def compile_post(
    compiler: PostCompiler, title: str = "", content: str = "", hashtags: str = "", **request
) -> Post:
    request.setdefault("topic", TOPIC)
    return compiler.compile(PostRequest(**request), title, content, hashtags)


def assert_contract(post: Post, request: PostRequest) -> None:
    """Everything the API promises about a compiled post, whatever the models said."""
    # Title: one line, 1..150 characters, no label.
    assert "\n" not in post.title
    assert 1 <= len(post.title) <= TITLE_MAX_CHARS
    assert post.title == post.title.strip()
    assert not TITLE_LABEL.match(post.title), post.title

    # Hashtags: exactly as many as asked, unique ignoring case, CamelCase words with a letter.
    assert len(post.hashtags) == request.num_hashtags
    assert len({tag.casefold() for tag in post.hashtags}) == len(post.hashtags)
    for tag in post.hashtags:
        assert HASHTAG.match(tag), tag
        assert any(c.isalpha() for c in tag), tag

    # Body: not empty, within its length band, no stray blank lines at either end.
    assert post.content
    assert post.content == post.content.strip()
    assert len(post.content) <= LENGTH_BANDS[request.length][1]

    # Assembled text.
    expected = post.title + "\n\n" + post.content
    if post.hashtags:
        expected += "\n\n" + " ".join(post.hashtags)
    assert post.text == expected
    assert len(post.text) <= LINKEDIN_MAX_CHARS
    assert not SPECIAL_TOKEN.search(post.text), post.text
    assert not HTML_TAG.search(post.text), post.text
    assert not CONTROL_CHARS.search(post.text)

    # Metadata.
    words = len(post.text.split())
    assert post.metadata.characters == len(post.text)
    assert post.metadata.words == words
    assert post.metadata.reading_time_seconds == math.ceil(words * 60 / 200)
    assert post.metadata.model == MODEL


# --- property tests: any model output, any valid request ------------------------------------

NOISE = st.sampled_from(
    [
        "<|im_start|>",
        "<|im_start|>assistant\n",
        "<|im_end|>",
        "<s>",
        "[INST]",
        "Title: ",
        'Title: "',
        "Hashtags:",
        "**",
        "## ",
        "# ",
        "#",
        "#AI",
        "#ai",
        " #Code_Review",
        "<b>",
        "</b>",
        "&lt;i&gt;",
        "<!--",
        "-->",
        "Sure! Here is a LinkedIn post:",
        "\n",
        "\n\n",
        ". ",
        "!",
        "?",
        '"',
        "\u201c",
        "\u2026",
        "1. ",
        "* ",
        "_",
        "Code review catches bugs early. ",
        "word ",
        "\u01f0",
        "\u00df",
        " ",
    ]
)
RAW = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(NOISE, st.text(max_size=8)), max_size=40).map("".join),
    # Long output, cheap to generate: a few pieces repeated past every length band.
    st.builds(
        lambda parts, times: "".join(parts) * times,
        st.lists(NOISE, min_size=1, max_size=6),
        st.integers(20, 150),
    ),
)


def _valid_text(value: str) -> bool:
    try:
        PostRequest(topic="A valid topic", audience=value)
    except ValueError:  # pydantic's ValidationError is one
        return False
    return True


def _valid_topic(value: str) -> bool:
    try:
        PostRequest(topic=value)
    except ValueError:  # pydantic's ValidationError is one
        return False
    return True


TOPICS = st.one_of(
    st.text(min_size=3, max_size=120),
    st.lists(NOISE, min_size=1, max_size=12).map("".join),
    st.text(min_size=490, max_size=500),
).filter(_valid_topic)
OPTIONAL_TEXT = st.one_of(
    st.none(),
    st.text(max_size=200).filter(_valid_text),
    st.lists(NOISE, max_size=10).map("".join).filter(lambda t: len(t.strip()) <= 200),
)
REQUESTS = st.builds(
    PostRequest,
    topic=TOPICS,
    tone=st.sampled_from(list(Tone)),
    audience=OPTIONAL_TEXT,
    length=st.sampled_from(list(PostLength)),
    num_hashtags=st.integers(0, 10),
    call_to_action=OPTIONAL_TEXT,
    seed=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    use_cache=st.booleans(),
)
# A call to action with no markup in it: the body must end with exactly this text.
WORD = st.text(st.characters(categories=["Lu", "Ll", "Nd"]), min_size=1, max_size=12)
PLAIN_CTA = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(WORD, min_size=1, max_size=12),
    st.sampled_from(["", ".", "!", "?"]),
)


@PROPERTY_SETTINGS
@given(request=REQUESTS, title=RAW, content=RAW, hashtags=RAW)
def test_contract_holds_for_any_model_output(
    compiler: PostCompiler, request: PostRequest, title: str, content: str, hashtags: str
) -> None:
    assert_contract(compiler.compile(request, title, content, hashtags), request)


@PROPERTY_SETTINGS
@given(
    request=REQUESTS,
    cta=PLAIN_CTA,
    content=RAW,
)
def test_content_ends_with_the_call_to_action(
    compiler: PostCompiler, request: PostRequest, cta: str, content: str
) -> None:
    request = request.model_copy(update={"call_to_action": cta})
    post = compiler.compile(request, "A hook", content, "#AI")
    assert_contract(post, request)
    assert post.content == cta or post.content.endswith("\n\n" + cta)


@settings(PROPERTY_SETTINGS, max_examples=40)
@given(
    length=st.sampled_from(list(PostLength)),
    num_hashtags=st.integers(0, 10),
    sentence=st.sampled_from(
        [
            "Small reviews ship faster, lesson {i}. ",
            "Feedback number {i} is a gift!\n\n",
            "Why does review {i} matter? Because of context {i}. ",
        ]
    ),
)
def test_long_model_output_is_cut_to_the_band_at_a_sentence(
    compiler: PostCompiler, length: PostLength, num_hashtags: int, sentence: str
) -> None:
    content = "".join(sentence.format(i=i) for i in range(120))
    request = PostRequest(topic=TOPIC, length=length, num_hashtags=num_hashtags)
    post = compiler.compile(request, "x" * 400, content, "")
    assert_contract(post, request)
    low, high = LENGTH_BANDS[length]
    assert low <= len(post.content) <= high
    assert post.content[-1] in ".!?"


# --- examples: what small models really return ----------------------------------------------

REALISTIC_TITLE = (
    '<|im_start|>assistant\nSure! Here is a LinkedIn post:\nTitle: "Code review is a speed '
    'multiplier"<|im_end|>'
)
REALISTIC_CONTENT = """<|im_start|>assistant
Sure! Here is a LinkedIn post:

**Code review is a speed multiplier**

## Why it matters

Code review catches bugs before they reach production. It also spreads knowledge across the \
team, so nobody is a bottleneck.

Teams that review small changes every day ship faster than teams that review big changes \
once a week.

Code review catches bugs before they reach production.

#CodeReview #Engineering<|im_end|>"""


def test_realistic_small_model_output(compiler: PostCompiler) -> None:
    post = compile_post(
        compiler,
        REALISTIC_TITLE,
        REALISTIC_CONTENT,
        "Sure! Here are some hashtags:\n#CodeReview #codereview #Engineering",
        num_hashtags=5,
        length="short",
    )
    assert post.title == "Code review is a speed multiplier"
    assert post.hashtags == ["#CodeReview", "#Engineering", "#Code", "#Review", "#Teams"]
    for junk in ("<|", "assistant", "Sure", "**", "##", "#CodeReview", "Title"):
        assert junk not in post.content
    # The hook restated as the body's first line is dropped; so is the repeated sentence.
    assert not post.content.startswith("Code review is a speed multiplier")
    assert post.content.count("Code review catches bugs before they reach production.") == 1
    assert "Teams that review small changes every day ship faster" in post.content
    assert post.content.endswith("once a week.")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('Title: "Code review is a speed multiplier"', "Code review is a speed multiplier"),
        ('"Title: Code review is a speed multiplier"', "Code review is a speed multiplier"),
        ("**Hook:** Code review is a speed multiplier", "Code review is a speed multiplier"),
        ("# Code review is a speed multiplier", "Code review is a speed multiplier"),
        ("\u201cCode review is a speed multiplier\u201d", "Code review is a speed multiplier"),
        ("<b>Code review</b> is a speed multiplier", "Code review is a speed multiplier"),
        (
            "Code review is a speed multiplier #CodeReview #DevOps",
            "Code review is a speed multiplier",
        ),
        ("<|im_start|>assistant\nSure!\nCode review wins<|im_end|>", "Code review wins"),
        ("Certainly! Here is a hook for your post:\nCode review wins", "Code review wins"),
        ("Code review wins @TechJetsignals |", "Code review wins"),
        # A hook does not end on the word a removed placeholder leaves dangling.
        ("Code review wins at [Company Name]", "Code review wins"),
        (
            "Code review is a speed multiplier. Here is why it matters to every team.",
            "Code review is a speed multiplier.",
        ),
    ],
)
def test_title_is_cleaned(compiler: PostCompiler, raw: str, expected: str) -> None:
    assert compile_post(compiler, title=raw).title == expected


@pytest.mark.parametrize("raw", ["", "   ", "<|im_end|>", "**", "#AI #ML", "Sure!", "12"])
def test_title_falls_back_to_the_topic(compiler: PostCompiler, raw: str) -> None:
    post = compile_post(compiler, title=raw, topic="why code review makes teams faster")
    assert post.title == "Why code review makes teams faster"


def test_long_title_is_cut_at_a_word_with_an_ellipsis(compiler: PostCompiler) -> None:
    raw = " ".join(f"word{i}" for i in range(60))  # no sentence end, about 400 characters
    title = compiler._fit_title(raw)  # how a long topic becomes the fallback hook
    assert len(title) <= TITLE_MAX_CHARS
    assert title.endswith("\u2026")
    kept = title[:-1]
    assert raw.startswith(kept)
    assert raw[len(kept)] == " "
    # A hook line of the model's that had to be cut is no hook: the post opens otherwise.
    assert compile_post(compiler, title=raw).title != title


@pytest.mark.parametrize("topic", ["<b></b>", "***", "<|im_end|>", "TITLE:", "```"])
def test_topic_without_text_still_gives_a_title_and_body(
    compiler: PostCompiler, topic: str
) -> None:
    request = PostRequest(topic=topic)
    post = compiler.compile(request, "", "", "")
    assert_contract(post, request)


def test_topic_markup_does_not_reach_the_fallback_title_or_body(compiler: PostCompiler) -> None:
    post = compile_post(compiler, topic="<b>remote</b> work &lt;i&gt;now&lt;/i&gt;")
    assert post.title == "Remote work now"
    assert post.content == "remote work now."


def test_control_characters_from_the_model_are_removed(compiler: PostCompiler) -> None:
    post = compile_post(
        compiler,
        title="Code\x1b[31m review\x00 wins",
        content="Review\x08 small\x7f changes.\r\nShip\x85daily.",
    )
    assert post.title == "Code [31m review wins"
    assert post.content == "Review small changes.\nShip\ndaily."


def test_empty_content_falls_back_to_the_topic(compiler: PostCompiler) -> None:
    post = compile_post(compiler, title="A hook", content="<|im_end|>")
    assert post.content == "Why code review makes teams faster."


def test_echoes_and_hashtag_lines_are_removed_from_the_body(compiler: PostCompiler) -> None:
    content = (
        "Sure! Here is a LinkedIn post:\n\n"
        "Of course, feedback matters.\n\n"
        "Absolutely nobody likes slow code reviews.\n\n"
        "#AI #ML\n\n"
        "# #\n\n"
        "Review small changes. #CodeReview"
    )
    post = compile_post(compiler, title="A hook", content=content)
    assert post.content == (
        "Of course, feedback matters.\n\n"
        "Absolutely nobody likes slow code reviews.\n\n"
        "Review small changes."
    )


def test_body_is_cut_at_a_sentence_inside_the_band(compiler: PostCompiler) -> None:
    sentences = [f"Point {i} is about reviewing small changes early." for i in range(60)]
    post = compile_post(compiler, title="A hook", content=" ".join(sentences), length="short")
    low, high = LENGTH_BANDS[PostLength.short]
    assert low <= len(post.content) <= high
    assert post.content.endswith("early.")
    assert " ".join(sentences).startswith(post.content)


def test_call_to_action_ends_the_body_after_a_blank_line(compiler: PostCompiler) -> None:
    sentences = " ".join(f"Point {i} is about reviewing small changes." for i in range(80))
    cta = "Follow me for more on engineering culture."
    post = compile_post(
        compiler, title="A hook", content=sentences, length="short", call_to_action=cta
    )
    assert post.content.endswith("\n\n" + cta)
    assert len(post.content) <= LENGTH_BANDS[PostLength.short][1]
    body = post.content.removesuffix("\n\n" + cta)
    assert body.endswith("changes.")


def test_call_to_action_is_not_repeated_and_stands_alone_without_a_body(
    compiler: PostCompiler,
) -> None:
    post = compile_post(compiler, title="A hook", content="", call_to_action="Follow me.")
    assert post.content == "Follow me."


def test_call_to_action_markup_is_removed(compiler: PostCompiler) -> None:
    post = compile_post(
        compiler, title="A hook", content="Body.", call_to_action="**Follow me** for <b>more</b>"
    )
    assert post.content == "Body.\n\nFollow me for more"


def test_call_to_action_of_only_markup_is_ignored(compiler: PostCompiler) -> None:
    post = compile_post(compiler, title="A hook", content="Body text here.", call_to_action="**")
    assert post.content == "Body text here."


def test_too_few_hashtags_are_filled_from_topic_keywords(compiler: PostCompiler) -> None:
    post = compile_post(compiler, hashtags="#CodeReview", num_hashtags=3)
    assert post.hashtags == ["#CodeReview", "#Code", "#Review"]
    post = compile_post(compiler, hashtags="", num_hashtags=4)
    assert post.hashtags == ["#Code", "#Review", "#Teams", "#Faster"]


def test_hashtags_without_hash_signs_are_parsed(compiler: PostCompiler) -> None:
    post = compile_post(compiler, hashtags="Hashtags: software engineering, DevOps", num_hashtags=3)
    assert post.hashtags == ["#SoftwareEngineering", "#DevOps", "#Code"]


def test_duplicate_hashtags_are_dropped_ignoring_case(compiler: PostCompiler) -> None:
    post = compile_post(compiler, hashtags="#AI #ai #Ai #ML #ml", num_hashtags=2)
    assert post.hashtags == ["#AI", "#ML"]


def test_ten_hashtags_for_a_short_topic_use_general_tags(compiler: PostCompiler) -> None:
    post = compile_post(compiler, topic="AI!", hashtags="#ai", num_hashtags=10)
    assert len(post.hashtags) == 10
    assert post.hashtags[0] == "#Ai"
    assert "#LinkedIn" in post.hashtags


def test_zero_hashtags_gives_no_hashtags_line(compiler: PostCompiler) -> None:
    post = compile_post(
        compiler, title="A hook", content="Body.", hashtags="#AI #ML", num_hashtags=0
    )
    assert post.hashtags == []
    assert post.text == "A hook\n\nBody."
    assert "#" not in post.text


def test_text_assembly_and_metadata(compiler: PostCompiler) -> None:
    post = compile_post(
        compiler, title="A hook", content="One two three.", hashtags="#AI", num_hashtags=1
    )
    assert post.text == "A hook\n\nOne two three.\n\n#AI"
    assert post.metadata.characters == len("A hook\n\nOne two three.\n\n#AI")
    assert post.metadata.words == 6
    assert post.metadata.reading_time_seconds == 2  # 6 words at 200 a minute: 1.8 s, rounded up
    assert post.metadata.model == MODEL
    assert post.metadata.cache.hit is False


def test_each_post_gets_a_new_id(compiler: PostCompiler) -> None:
    ids = {compile_post(compiler, title="A hook").id for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_maximal_post_stays_within_linkedin_limit(compiler: PostCompiler) -> None:
    # Longest title, ten 40-character tags, a 200-character call to action, a long body.
    request = PostRequest(
        topic=TOPIC, length="long", num_hashtags=10, call_to_action="Follow along " * 15
    )
    tags = " ".join("#" + chr(ord("A") + i) * 40 for i in range(10))
    title = " ".join(["headline"] * 40)
    content = " ".join(f"Sentence number {i} explains one more detail." for i in range(200))
    post = compiler.compile(request, title, content, tags)
    assert_contract(post, request)
    assert post.hashtags[0] == "#" + "A" * 40
    assert len(post.text) > 2500


def test_body_drops_template_holes_and_handles(compiler: PostCompiler) -> None:
    raw = (
        "Reviews catch bugs early. Read more at [insert link] from @acme_corp. "
        "Email me at jo@example.com. Teams that review ship faster and with fewer regressions."
    )
    content = compile_post(compiler, content=raw, length="short").content
    assert "[" not in content and "@acme" not in content
    # The sentence with the hole goes whole: "Read more at from." would be a broken sentence.
    assert "Read more" not in content and "jo@example.com" in content
