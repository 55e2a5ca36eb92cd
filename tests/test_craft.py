"""The quality harness's craft checks (benchmarks/craft.py): defects a reader sees at once.

Every example of a defect below is a line of a real post (issue 13's reading of 40 posts from
`make run`, and the harness's own runs); every clean example must stay clean.
"""

from __future__ import annotations

import pytest

from benchmarks.craft import CRAFT_CHECKS, FOLD_CHARS, find_defects
from benchmarks.quality.checks import Draft
from deployments.schemas import PostRequest

TOPIC = "Why code review makes teams faster"
CLEAN_BODY = (
    "Last year our team waited two days for every review. Pull requests piled up, and people "
    'started batching changes into huge diffs. As one colleague put it, "nobody reads 900 '
    'lines."\n\n'
    "We set one rule: every review gets a first answer within four hours. Reviews got smaller "
    "and merges got faster.\n\n"
    "I'm convinced fast feedback keeps work small, and small work is safe work."
)
CLEAN_TITLE = "Our reviews took two days. Then we set one rule."


def request(**fields: object) -> PostRequest:
    fields.setdefault("topic", TOPIC)
    fields.setdefault("num_hashtags", 2)
    return PostRequest(**fields)


def post(title: str = CLEAN_TITLE, body: str = CLEAN_BODY) -> Draft:
    return Draft.assemble(title, body, ["#CodeReview", "#Teams"])


def defects(title: str = CLEAN_TITLE, body: str = CLEAN_BODY, **fields: object) -> set[str]:
    verdicts = find_defects(post(title, body), request(**fields))
    assert list(verdicts) == list(CRAFT_CHECKS)
    return {name for name, why in verdicts.items() if why is not None}


def test_a_clean_post_has_no_defect() -> None:
    assert defects() == set()


@pytest.mark.parametrize(
    "body",
    [
        '"Hey everyone, reviews are the fastest way to learn.',
        '"Achieve Your Dreams, 100% of the Time. Reviews help.',
        "\u201cReviews help us learn. They also slow us down.",
        '"While many people have been coding for years, reviews still matter."',
    ],
)
def test_stray_and_wrapping_quotes(body: str) -> None:
    assert "stray_quotes" in defects(body=f"{body}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    "line",
    [
        "Hey everyone, I'm Alexei, a professional and AI assistant.",
        "I'm Alex, the team lead at and I'm proud of it.",
        "I'm Alex, a professional LinkedIn ghostwriter.",
        "My name is Sarah and I lead a team of ten.",
        "Hi, I am Priya. Reviews changed my team.",
        "Best regards,\nJohn",
        "\u2014 Maria Lopez",
    ],
)
def test_invented_personas(line: str) -> None:
    assert "invented_persona" in defects(body=f"{CLEAN_BODY}\n\n{line}")


def test_a_name_the_request_gave_is_the_users_own() -> None:
    body = f"I'm Priya, and I lead the platform team.\n\n{CLEAN_BODY}"
    assert "invented_persona" in defects(body=body)
    assert "invented_persona" not in defects(body=body, audience="Priya's team leads")


@pytest.mark.parametrize(
    "line",
    [
        "I'm here to help inspire everyone who wants to improve.",
        "Let me know if you'd like any changes.",
        "As an AI assistant, I can't share stories.",
        "This message conveys the importance of good feedback.",
        "Feel free to ask me for another version.",
    ],
)
def test_assistant_talk(line: str) -> None:
    assert "assistant_talk" in defects(body=f"{CLEAN_BODY}\n\n{line}")


@pytest.mark.parametrize(
    "body",
    [
        'document.write("Here\'s a professional and confident LinkedIn post about reviews.")',
        'print("Reviews make teams faster.")',
        "```\nReviews make teams faster.\n```",
    ],
)
def test_code_wrappers(body: str) -> None:
    assert "code_wrapper" in defects(body=f"{body}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    "line", ["Introduction: reviews matter.", "Paragraph 2: teams learn.", "Key Points:"]
)
def test_section_labels(line: str) -> None:
    assert "section_label" in defects(body=f"{line}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    "line",
    [
        '"Migrating a Monolith to Microservices and Back: A Case Study"',
        "The Hidden Power of Code Review",
        "Why code review makes teams faster",
    ],
)
def test_inner_titles(line: str) -> None:
    assert "inner_title" in defects(body=f"{line}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    "line", ["Hey everyone, today is about reviews.", "Here's a story I love about reviews."]
)
def test_empty_openers(line: str) -> None:
    assert "empty_opener" in defects(body=f"{line}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    ("title", "why"),
    [
        ("Why Code Review Makes Teams Faster", "restates"),
        ("Why code review makes teams faster: a new approach", "restates"),
        ("Why Reviews Make Teams Faster - A New Approach To Team Building & Leadership by", "cut"),
        ("Reviews are the fastest way to\u2026", "cut"),
        ("x" * (FOLD_CHARS + 1), "fold"),
    ],
)
def test_hooks_that_do_not_stand_alone(title: str, why: str) -> None:
    verdict = find_defects(post(title=title), request())["hook"]
    assert verdict is not None
    assert why in verdict


def test_a_hook_that_only_shares_words_with_the_topic_is_fine() -> None:
    assert "hook" not in defects(title="Code review made my team faster. Here is how.")


@pytest.mark.parametrize(
    "line",
    [
        "Dear,",
        "I hope you're doing well! Reviews matter.",
        "I am writing to provide you with a valuable resource.",
        "I've been following your work for quite some time now.",
        "If you're interested in how I can help you, just let me know.",
    ],
)
def test_letter_voice(line: str) -> None:
    assert "letter_voice" in defects(body=f"{line}\n\n{CLEAN_BODY}")


@pytest.mark.parametrize(
    "line",
    [
        "I've been working closely with to implement new tools.",
        "I had the privilege of working with a team of to conduct interviews.",
        "I recently completed a data science course at, and I learned a lot.",
        "Hey! I'm and I'm a huge fan of your startup.",
        "I'm proud of the engineering team at who are pushing boundaries.",
        "It could be a game changer for the.",
    ],
)
def test_placeholder_holes(line: str) -> None:
    assert "placeholder_hole" in defects(body=f"{CLEAN_BODY}\n\n{line}")


@pytest.mark.parametrize(
    "line",
    [
        "This is the work we are proud of.",
        "Something to look forward to.",
        "We met at the office and talked it over with the team.",
        "It is what it is.",
    ],
)
def test_ordinary_sentences_have_no_hole(line: str) -> None:
    assert "placeholder_hole" not in defects(body=f"{CLEAN_BODY}\n\n{line}")


def test_a_pronoun_ending_a_sentence_is_no_hole() -> None:
    assert "placeholder_hole" not in defects(
        body=f"{CLEAN_BODY}\n\nThey could do anything with her."
    )


def test_a_preposition_that_ends_a_clause_is_no_hole() -> None:
    # Found on held-out set 31782376: the check counted this as a hole.
    line = "But as the days went by, I realized that it was about more than code."
    assert "placeholder_hole" not in defects(body=f"{CLEAN_BODY}\n\n{line}")
