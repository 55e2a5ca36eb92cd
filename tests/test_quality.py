"""The quality scenario's scoring (benchmarks/quality/checks.py): pure checks, no model, no Ray."""

from __future__ import annotations

import pytest

from benchmarks.quality.checks import (
    CHECKS,
    CONTRACT_CHECKS,
    EXTRA_CHECKS,
    RELEVANCE_THRESHOLD,
    Draft,
    applies,
    check_relevance,
    prompt_sentences,
    relevance_text,
    score_post,
)
from benchmarks.quality.evaluation import Evaluation, build_report
from benchmarks.quality.request_set import QUALITY_REQUESTS, REFERENCE_BODIES, quality_requests
from deployments.schemas import LENGTH_BANDS, PostLength, PostRequest

TOPIC = "Why code review makes teams faster"
CTA = "Tell me how your team reviews code."

GOOD_BODY = (
    "Last year our team waited two days for every review. Pull requests piled up, and people "
    "started batching changes into huge diffs that nobody wanted to read.\n\n"
    "We set one rule: every review gets a first answer within four hours. Reviews got smaller, "
    "merges got faster, and incidents dropped because each change was easy to reason about.\n\n"
    "Fast feedback is not about speed for its own sake. It keeps work small, and small work is "
    "safe work."
)


def request(**fields: object) -> PostRequest:
    fields.setdefault("topic", TOPIC)
    fields.setdefault("length", "medium")
    fields.setdefault("num_hashtags", 3)
    return PostRequest(**fields)


def draft(
    title: str = "Fast reviews make fast teams.",
    content: str = GOOD_BODY,
    hashtags: tuple[str, ...] = ("#CodeReview", "#Teams", "#Engineering"),
) -> Draft:
    return Draft.assemble(title, content, hashtags)


def failed(post: Draft, req: PostRequest, cosine: float | None = None) -> set[str]:
    return {name for name, why in score_post(post, req, cosine).items() if why is not None}


def test_good_post_passes_every_check() -> None:
    verdicts = score_post(draft(), request(), cosine=0.6)
    assert set(verdicts) == set(CHECKS)
    assert all(why is None for why in verdicts.values()), verdicts


def test_good_post_with_call_to_action_passes() -> None:
    req = request(call_to_action=CTA)
    assert failed(draft(content=f"{GOOD_BODY}\n\n{CTA}"), req, 0.6) == set()


@pytest.mark.parametrize(
    "title",
    [
        "",
        "   ",
        "!!!",
        "Line one\nLine two",
        " Leading space",
        "x" * 151,
    ],
)
def test_bad_titles_fail_title_only(title: str) -> None:
    assert failed(draft(title=title), request()) == {"title"}


def test_title_of_150_chars_passes() -> None:
    assert failed(draft(title="a" * 150), request()) == set()


@pytest.mark.parametrize("length", list(PostLength))
def test_length_band_edges(length: PostLength) -> None:
    low, high = LENGTH_BANDS[length]
    req = request(length=length.value)
    for size in (low, high):
        assert "length" not in failed(draft(content="a" * (size - 1) + "."), req)
    for size in (low - 1, high + 1):
        assert "length" in failed(draft(content="b" * (size - 1) + "."), req)


def test_body_cut_mid_sentence_fails_sentence_end() -> None:
    body = GOOD_BODY.removesuffix(".") + " and then the team"
    assert failed(draft(content=body), request()) == {"sentence_end"}


@pytest.mark.parametrize("ending", ["safe work!", "safe work?", "safe work…", 'safe "work."'])
def test_sentence_ends_with_closing_punctuation(ending: str) -> None:
    body = GOOD_BODY.removesuffix("safe work.") + ending
    assert "sentence_end" not in failed(draft(content=body), request())


def test_body_before_call_to_action_must_end_at_a_sentence() -> None:
    req = request(call_to_action=CTA)
    body = GOOD_BODY.removesuffix(".") + " because"
    assert failed(draft(content=f"{body}\n\n{CTA}"), req) == {"sentence_end"}


def test_call_to_action_without_punctuation_counts_as_the_end() -> None:
    cta = "Follow me for more"
    req = request(call_to_action=cta)
    assert failed(draft(content=f"{GOOD_BODY}\n\n{cta}"), req) == set()


def test_missing_call_to_action_fails() -> None:
    req = request(call_to_action=CTA)
    assert failed(draft(), req) == {"call_to_action"}


def test_call_to_action_not_at_the_end_fails() -> None:
    req = request(call_to_action=CTA)
    content = f"{CTA}\n\n{GOOD_BODY}"
    assert "call_to_action" in failed(draft(content=content), req)


def test_call_to_action_glued_to_a_word_fails() -> None:
    req = request(call_to_action="reviews code.")
    content = GOOD_BODY + " Tell me how your team reviews code."
    assert "call_to_action" not in failed(draft(content=content), req)
    glued = GOOD_BODY.removesuffix(".") + "xreviews code."
    assert "call_to_action" in failed(draft(content=glued), req)


def test_call_to_action_only_applies_when_asked() -> None:
    assert not applies("call_to_action", request())
    assert applies("call_to_action", request(call_to_action=CTA))
    assert applies("length", request())


@pytest.mark.parametrize(
    ("tags", "asked"),
    [
        (("#CodeReview", "#Teams"), 3),  # too few
        (("#CodeReview", "#Teams", "#Engineering", "#Agile"), 3),  # too many
        (("#CodeReview", "#codereview", "#Teams"), 3),  # duplicate ignoring case
        (("#Code_Review", "#Teams", "#Engineering"), 3),  # underscore
        (("CodeReview", "#Teams", "#Engineering"), 3),  # no '#'
        (("#Code Review", "#Teams", "#Engineering"), 3),  # space
        (("#", "#Teams", "#Engineering"), 3),  # empty tag
        (("#Teams",), 0),  # none asked
    ],
)
def test_bad_hashtags_fail_hashtags_only(tags: tuple[str, ...], asked: int) -> None:
    post = draft(hashtags=tags)
    assert failed(post, request(num_hashtags=asked)) == {"hashtags"}


def test_zero_hashtags_asked_and_none_given_passes() -> None:
    assert failed(draft(hashtags=()), request(num_hashtags=0)) == set()


def test_unicode_letters_and_digits_make_a_valid_tag() -> None:
    post = draft(hashtags=("#Café", "#Web3", "#Teams"))
    assert failed(post, request()) == set()


@pytest.mark.parametrize(
    "token", ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "</s>", "[INST]", "im_end"]
)
def test_template_tokens_fail(token: str) -> None:
    body = GOOD_BODY.replace("Fast feedback", f"{token} Fast feedback")
    assert "no_template_tokens" in failed(draft(content=body), request())


def test_template_token_in_title_fails() -> None:
    post = draft(title="<|im_start|>Fast reviews make fast teams.")
    assert "no_template_tokens" in failed(post, request())


def test_role_line_left_from_a_template_fails() -> None:
    body = "assistant\n" + GOOD_BODY
    assert "no_template_tokens" in failed(draft(content=body), request())


def test_the_word_assistant_in_a_sentence_is_fine() -> None:
    body = GOOD_BODY.replace("Fast feedback", "An assistant helps, but fast feedback")
    assert failed(draft(content=body), request()) == set()


@pytest.mark.parametrize(
    "echo",
    [
        "<request>",
        "</request>",
        "Title: Fast reviews make fast teams.",
        "Hook line: reviews matter.",
        "Topic: Why code review makes teams faster",
        "Audience: engineers",
        "Body: here it goes.",
        "Sure! Here is your LinkedIn post:",
        "Certainly!",
        "Here are the hashtags:",
        "You are an experienced LinkedIn ghostwriter.",
        "Share one concrete insight or example.",
        "Plain text only: no title, no greeting, no hashtags, no emojis, no lists.",
        "I wrote this about the topic below.",
        "[Request]",
        "Chat History:",
        "User: write me a post",
        "That concludes my response to your request.",
        'The title could be "Fast reviews" or "Small diffs".',
        "Here's a possible intro for your next message:",
        'The headline is: "Fast reviews"',
        "Tone of the post: casual and supportive",
        "I'm ready to help. What's the topic you'd like to discuss?",
    ],
)
def test_prompt_echoes_in_body_fail(echo: str) -> None:
    body = f"{echo}\n{GOOD_BODY}"
    assert "no_prompt_echo" in failed(draft(content=body), request())


def test_label_in_title_fails() -> None:
    post = draft(title="Title: Fast reviews make fast teams.")
    assert failed(post, request()) == {"no_prompt_echo"}


@pytest.mark.parametrize(
    "line",
    [
        "Of course, feedback matters more than speed.",
        "Absolutely nobody enjoys waiting two days for a review.",
        "Here is what changed for us.",
        "The title of this story is patience.",
        "The title: a lesson.",
    ],
)
def test_ordinary_sentences_are_not_echoes(line: str) -> None:
    body = f"{line}\n{GOOD_BODY}"
    assert "no_prompt_echo" not in failed(draft(content=body), request())


def test_prompt_sentences_cover_every_part_but_not_the_users_text() -> None:
    req = request(audience="new managers", topic="Request handling in APIs")
    sentences = prompt_sentences(req)
    assert "reply with that sentence only" in sentences
    assert "reply with the hashtags only" in sentences
    assert "share one concrete insight or example" in sentences
    assert not any("request handling" in s or "new managers" in s for s in sentences)


def test_topic_words_in_the_body_are_not_an_echo() -> None:
    body = f"{TOPIC} is a question I get a lot.\n{GOOD_BODY}"
    assert failed(draft(content=body), request()) == set()


def test_repeated_lines_fail() -> None:
    line = "Small reviews keep work moving."
    body = f"{line}\n{GOOD_BODY}\n{line}"
    assert failed(draft(content=body), request()) == {"no_repeated_lines"}


def test_title_repeated_in_the_body_fails() -> None:
    title = "Fast reviews make fast teams."
    body = f"{title}\n\n{GOOD_BODY}"
    assert failed(draft(title=title, content=body), request()) == {"no_repeated_lines"}


def test_blank_lines_are_not_repeats() -> None:
    body = GOOD_BODY.replace("\n\n", "\n\n\n")
    assert "no_repeated_lines" not in failed(draft(content=body), request())


def test_text_over_3000_chars_fails() -> None:
    body = ("Small reviews keep work moving. " * 90).strip()  # within the long band
    post = draft(title="t" * 150, content=body, hashtags=tuple(f"#Tag{i}" for i in range(3)))
    assert len(body) <= LENGTH_BANDS[PostLength.long][1] < len(post.text)
    verdicts = score_post(post, request(length="long"))
    assert verdicts["max_chars"] is not None
    assert verdicts["max_chars"].startswith("text is")


def test_relevance_threshold() -> None:
    assert check_relevance(RELEVANCE_THRESHOLD + 0.01) is None
    assert check_relevance(RELEVANCE_THRESHOLD) is not None
    assert check_relevance(0.1) is not None
    assert "relevance" in failed(draft(), request(), cosine=0.05)
    assert "relevance" not in score_post(draft(), request())  # no cosine: not scored


def test_relevance_text_leaves_out_the_call_to_action() -> None:
    req = request(call_to_action=CTA)
    assert relevance_text(draft(content=f"{GOOD_BODY}\n\n{CTA}"), req) == GOOD_BODY
    assert relevance_text(draft(content=CTA), req) == CTA


def test_every_check_has_a_description_and_the_contract_checks_are_pure() -> None:
    assert set(CONTRACT_CHECKS) == set(CHECKS) - {"relevance"}
    post, req = draft(), request()
    assert score_post(post, req) == score_post(post, req)


def test_the_fixed_requests_are_varied_and_valid() -> None:
    requests = quality_requests()
    assert len(requests) == len(QUALITY_REQUESTS) == 24
    assert len({r.topic for r in requests}) == 24
    assert len({r.seed for r in requests}) == 24
    assert {r.length.value for r in requests} == {"short", "medium", "long"}
    assert {r.num_hashtags for r in requests} == set(range(7))
    assert len({r.tone for r in requests}) == 5
    assert any(r.audience for r in requests) and not all(r.audience for r in requests)
    assert any(r.call_to_action for r in requests)
    assert not all(r.call_to_action for r in requests)
    assert [r.seed for r in quality_requests(8)] == [r.seed for r in requests[:8]]
    other = quality_requests(seed_base=7)
    assert [r.seed for r in other] == [7 + 1000 * i for i in range(24)]
    assert [r.topic for r in other] == [r.topic for r in requests], "same requests, other seeds"


def _evaluation(cosines: list[list[float]], posts: list[Draft]) -> Evaluation:
    reqs = [request(topic=f"Topic number {i}") for i in range(len(posts))]
    return Evaluation(reqs, list(posts), cosines, RELEVANCE_THRESHOLD)


def test_evaluation_and_report() -> None:
    bad = draft(content="Sure! Here is your post:\n" + GOOD_BODY)
    cosines = [[0.7, 0.1, 0.2], [0.1, 0.2, 0.05], [0.1, 0.3, 0.8]]
    ev = _evaluation(cosines, [draft(), draft(), bad])
    assert ev.own == [0.7, 0.2, 0.8]
    assert sorted(ev.mismatched) == sorted([0.1, 0.2, 0.1, 0.05, 0.1, 0.3])
    assert ev.top1 == 3
    assert [ev.passed(i) for i in range(3)] == [True, False, False]
    assert ev.pass_rate == pytest.approx(1 / 3)

    report = build_report(ev)
    assert report.name == "quality"
    assert report.headline["pass_rate"] == pytest.approx(1 / 3)
    assert report.headline["publishable_rate"] == pytest.approx(1 / 3)
    checks, craft_defects, calibration, posts, failures = report.tables
    craft_rows = {row[0]: row for row in craft_defects.rows}
    assert craft_rows["publishable"][1] == 1
    assert craft_rows["no defect"][1] == 3
    rows = {row[0]: row for row in checks.rows}
    assert rows["relevance"][1:4] == [3, 2, 1]
    assert rows["no_prompt_echo"][1:4] == [3, 2, 1]
    assert rows["call_to_action"][1:5] == [0, 0, 0, "n/a"]
    assert rows["every check"][1:4] == [3, 1, 2]
    assert any("NOT met" in note for note in checks.notes)
    assert [row[1] for row in calibration.rows] == [3, 3, 6, 0, 0]
    assert [row[-1] for row in posts.rows] == ["pass", "relevance", "no_prompt_echo"]
    assert {(row[0], row[2]) for row in failures.rows} == {(2, "relevance"), (3, "no_prompt_echo")}


def test_report_says_met_when_every_post_passes() -> None:
    ev = _evaluation([[0.9, 0.1], [0.1, 0.9]], [draft(), draft()])
    checks = build_report(ev).tables[0]
    assert any(note.endswith(": met.") for note in checks.notes)
    assert build_report(ev).tables[4].rows == [["—", "no failures", "—", "—"]]


@pytest.mark.parametrize(
    "placeholder",
    [
        "[Company Name]",
        "[project_name]",
        "[insert brief anecdote here]",
        "{name}",
        "{{ team }}",
        "@acme_corp",
    ],
)
def test_placeholders_fail(placeholder: str) -> None:
    body = GOOD_BODY.replace("Last year our team", f"Last year our team at {placeholder}")
    assert failed(draft(content=body), request()) == {"no_placeholders"}


def test_insert_here_fails_placeholders() -> None:
    body = GOOD_BODY.replace("Fast feedback", "Insert your company name here. Fast feedback")
    assert failed(draft(content=body), request()) == {"no_placeholders"}


@pytest.mark.parametrize(
    "text", ["[1]", "(see below)", "We added more tests here.", "Mail jo@example.com today."]
)
def test_brackets_and_here_without_a_placeholder_are_fine(text: str) -> None:
    body = GOOD_BODY.replace("Fast feedback", f"{text} Fast feedback")
    assert "no_placeholders" not in failed(draft(content=body), request())


def test_stopword_hashtags_fail_hashtag_words() -> None:
    post = draft(hashtags=("#This", "#Will", "#Work"))
    assert failed(post, request()) == {"hashtag_words"}
    assert failed(draft(hashtags=("#CodeReview", "#The", "#Teams")), request()) == {"hashtag_words"}


@pytest.mark.parametrize(
    "tags",
    [("#Https", "#Teams", "#Work"), ("#WwwLinkedinCom", "#A1", "#B2"), ("#Request", "#X", "#Y")],
)
def test_link_pieces_and_prompt_words_fail_hashtag_words(tags: tuple[str, ...]) -> None:
    assert failed(draft(hashtags=tags), request()) == {"hashtag_words"}


def test_a_prompt_word_of_the_topic_is_a_fine_hashtag() -> None:
    post = draft(hashtags=("#Tone", "#Writing", "#Voice"))
    assert failed(post, request(topic="Finding your tone as a writer")) == set()


def test_extra_checks_are_reported_apart() -> None:
    assert {"no_placeholders", "hashtag_words"} == EXTRA_CHECKS
    assert set(CHECKS) > EXTRA_CHECKS
    bad_tags = draft(hashtags=("#This", "#Will", "#Work"))
    ev = _evaluation([[0.9, 0.1], [0.1, 0.9]], [draft(), bad_tags])
    assert [ev.passed(i) for i in range(2)] == [True, False]
    assert [ev.passed(i, extra=False) for i in range(2)] == [True, True]
    notes = build_report(ev).tables[0].notes
    assert any("Leaving out the extra checks" in note and "2/2" in note for note in notes)


def test_verdicts_follow_the_order_of_checks() -> None:
    assert list(score_post(draft(), request(), cosine=0.5)) == list(CHECKS)


def test_reference_bodies_belong_to_known_topics() -> None:
    assert set(REFERENCE_BODIES) <= set(range(len(QUALITY_REQUESTS)))
    for body in REFERENCE_BODIES.values():
        assert failed(draft(content=body), request(length="short")) == set()


def test_a_craft_defect_is_reported_and_makes_a_post_unpublishable() -> None:
    persona = draft(content="I'm Alexei, and I lead our platform team.\n\n" + GOOD_BODY)
    ev = _evaluation([[0.7, 0.1], [0.1, 0.7]], [draft(), persona])
    assert [ev.passed(i) for i in range(2)] == [True, True]  # the contract does not see it
    assert [ev.publishable(i) for i in range(2)] == [True, False]
    report = build_report(ev)
    assert report.headline["publishable_rate"] == pytest.approx(1 / 2)
    _, craft_defects, _, posts, failures = report.tables
    rows = {row[0]: row for row in craft_defects.rows}
    assert rows["invented_persona"][1] == 1 and rows["assistant_talk"][1] == 0
    assert any("NOT met" in note for note in craft_defects.notes)
    assert "invented_persona" in posts.rows[1][-1]
    assert (2, "invented_persona") in {(row[0], row[2]) for row in failures.rows}
