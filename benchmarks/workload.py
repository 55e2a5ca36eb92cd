"""The requests the benchmarks send: the same topics, tones and lengths everywhere, so the
in-process baseline and the graph generate comparable posts."""

from __future__ import annotations

from typing import Any

TOPICS: tuple[str, ...] = (
    "Why code review makes teams faster",
    "What I learned from my first year as an engineering manager",
    "How small pull requests reduce production incidents",
    "The hidden cost of meetings for software teams",
    "Why writing design docs saves time",
    "Lessons from migrating a monolith to services",
    "How to give feedback that people can act on",
    "Why on-call rotations need clear runbooks",
    "What makes a good technical interview",
    "How to onboard new engineers in their first week",
    "Why observability beats guessing in production",
    "The case for boring technology",
    "How mentoring junior developers made me a better engineer",
    "Why test automation pays for itself",
    "How to prioritise technical debt",
    "What remote teams can learn from open source",
    "Why documentation is a product",
    "How to run a useful retrospective",
    "The value of saying no to feature requests",
    "How data teams and product teams can work together",
    "Why security belongs in every sprint",
    "What a good incident postmortem looks like",
    "How to measure developer productivity without hurting it",
    "Why clear ownership speeds up decisions",
)

TONES: tuple[str, ...] = ("professional", "casual", "inspirational", "educational", "humorous")

_SUBJECTS: tuple[str, ...] = (
    "code review",
    "remote work",
    "hiring engineers",
    "technical debt",
    "cloud costs",
    "product management",
    "career growth",
    "team culture",
    "open source",
    "data quality",
    "machine learning in production",
    "customer feedback",
    "incident response",
    "public speaking",
    "mentorship",
    "startup fundraising",
    "sales engineering",
    "API design",
    "security culture",
    "leadership",
)

_ANGLES: tuple[str, ...] = (
    "three lessons from the last year",
    "a mistake I will not repeat",
    "what beginners get wrong",
    "why it matters more than you think",
    "how we measured the impact",
    "the one habit that changed everything",
    "a checklist for your team",
    "what the data says",
    "an unpopular opinion",
    "where it is heading next",
)


def request_body(
    index: int,
    seed: int,
    *,
    length: str = "short",
    use_cache: bool = True,
    num_hashtags: int = 3,
) -> dict[str, Any]:
    """The index-th benchmark request (topics and tones cycle) as a POST /v1/posts body."""
    return {
        "topic": TOPICS[index % len(TOPICS)],
        "tone": TONES[index % len(TONES)],
        "length": length,
        "num_hashtags": num_hashtags,
        "seed": seed,
        "use_cache": use_cache,
    }


def zipf_topics(count: int) -> list[str]:
    """`count` distinct topics (at most 200), most popular first when drawn by Zipf rank."""
    limit = len(_SUBJECTS) * len(_ANGLES)
    if not 1 <= count <= limit:
        raise ValueError(f"count must be between 1 and {limit}, got {count}")
    return [
        f"{_SUBJECTS[i % len(_SUBJECTS)]}: {_ANGLES[i // len(_SUBJECTS)]}" for i in range(count)
    ]
