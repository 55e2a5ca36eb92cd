"""The quality set: 24 fixed requests (engineering, leadership, careers, product, data; every
tone, length and 0-6 hashtags, some with an audience or a call to action) with their fixed seeds,
and short on-topic bodies written by hand to calibrate relevance."""

from __future__ import annotations

from typing import Any

from deployments.schemas import PostRequest

SEED_BASE = 424_242  # post i uses SEED_BASE + 1000 * i (each part adds its own offset)


def _req(topic: str, tone: str, length: str, tags: int, **extra: str) -> dict[str, Any]:
    return {"topic": topic, "tone": tone, "length": length, "num_hashtags": tags, **extra}


QUALITY_REQUESTS: tuple[dict[str, Any], ...] = (
    # engineering
    _req(
        "Why small pull requests ship faster than big ones",
        "professional",
        "medium",
        3,
        audience="software engineers",
    ),
    _req(
        "Lessons from our first Kubernetes outage",
        "educational",
        "long",
        4,
        call_to_action="What was your worst outage? Tell me in the comments.",
    ),
    _req("How we cut our cloud bill by 30 percent", "casual", "short", 2),
    _req(
        "Writing a failing test before fixing a bug",
        "educational",
        "short",
        0,
        audience="junior developers",
    ),
    _req("The real cost of flaky tests in continuous integration", "humorous", "medium", 5),
    # leadership
    _req(
        "How to run one-on-one meetings people look forward to",
        "inspirational",
        "medium",
        3,
        audience="new managers",
        call_to_action="Follow me for more on leading teams.",
    ),
    _req("Delegating work without losing quality", "professional", "long", 6),
    _req("Giving honest feedback with kindness", "educational", "short", 1),
    _req(
        "Leading a team through a layoff",
        "inspirational",
        "long",
        2,
        audience="engineering leaders",
    ),
    _req(
        "Why great managers protect their team's focus time",
        "casual",
        "short",
        4,
        call_to_action="Block two hours of focus time for your team this week.",
    ),
    # careers
    _req(
        "Switching careers from teaching to software engineering",
        "inspirational",
        "medium",
        3,
        audience="career changers",
    ),
    _req(
        "How to negotiate your first salary offer",
        "educational",
        "long",
        5,
        call_to_action="Save this post for your next offer.",
    ),
    _req("What I learned from being rejected by ten companies", "humorous", "short", 2),
    _req(
        "Building a personal brand as an introvert",
        "casual",
        "medium",
        0,
        audience="introverted professionals",
    ),
    _req("Why every engineer should learn to write well", "professional", "long", 3),
    # product
    _req(
        "How customer interviews changed our product roadmap",
        "professional",
        "medium",
        4,
        audience="product managers",
    ),
    _req(
        "Saying no to feature requests without losing customers",
        "educational",
        "short",
        3,
        call_to_action="How do you decide what not to build?",
    ),
    _req("Launching a minimum viable product in six weeks", "inspirational", "long", 6),
    _req(
        "Pricing experiments for a SaaS startup",
        "humorous",
        "medium",
        1,
        audience="startup founders",
    ),
    _req("Why product managers should read support tickets", "casual", "long", 2),
    # data
    _req(
        "Data quality checks every analytics team needs",
        "educational",
        "medium",
        5,
        audience="data engineers",
    ),
    _req(
        "Moving from dashboards to decisions with data",
        "professional",
        "short",
        3,
        call_to_action="Share the one metric your team watches most.",
    ),
    _req("Lessons from deploying a machine learning model to production", "casual", "long", 4),
    _req(
        "Why A/B tests often mislead and how to fix them",
        "humorous",
        "short",
        6,
        audience="product analysts",
        call_to_action="Comment with your favourite A/B testing mistake.",
    ),
)


# Short on-topic bodies written by hand for some of the topics above (index -> body): what a
# relevant post scores, printed with every run to re-check RELEVANCE_THRESHOLD.
REFERENCE_BODIES: dict[int, str] = {
    2: "We looked at our cloud invoice line by line and found idle test clusters running all "
    "weekend. Scheduling them to shut down at night and rightsizing two databases cut the bill "
    "by almost a third, and nobody noticed any slowdown.",
    4: "Flaky tests cost us more than we thought: every random failure in continuous "
    "integration meant a rerun, a lost half hour, and slowly eroding trust in the test suite. "
    "We quarantined them and fixed the top ten.",
    8: "Last spring we had to let go of a fifth of the team. I told people the truth as early as "
    "I could, gave everyone time to say goodbye, and spent the next weeks in one-on-ones with "
    "those who stayed. Trust comes back slowly, and only if you are honest.",
    9: "My best managers guarded our calendars. No meetings before noon, one team-wide quiet "
    "afternoon a week, and they answered the interruptions themselves. Deep work needs long, "
    "protected blocks of time.",
    17: "We gave ourselves six weeks to put a product in front of real customers. We cut every "
    "feature that did not test our main assumption, shipped in week five, and learned more in a "
    "month of usage than in a year of planning.",
    18: "We ran three pricing pages for a month: per seat, per usage, and a flat team plan. The "
    "flat plan converted best for small startups, while larger customers preferred paying per "
    "seat.",
    19: "Every Friday our product managers read twenty support tickets. It is the fastest way to "
    "learn where customers get stuck, and half of our roadmap changes last quarter came from "
    "those tickets.",
    21: "Dashboards do not make decisions, people do. We replaced forty charts with three "
    "metrics, each owned by someone who must act when it moves. Data only matters when it "
    "changes what you do next.",
}


def quality_requests(count: int | None = None, seed_base: int = SEED_BASE) -> list[PostRequest]:
    """The fixed requests as validated PostRequests, each with its fixed seed (another
    `seed_base` scores the same requests on other samples)."""
    chosen = QUALITY_REQUESTS[:count] if count else QUALITY_REQUESTS
    return [
        PostRequest(**body, seed=seed_base + 1000 * index, use_cache=False)
        for index, body in enumerate(chosen)
    ]
