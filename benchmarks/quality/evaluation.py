"""Every post scored (contract checks, relevance, craft defects) and the quality report's
tables: checks, craft, relevance calibration, every post, every failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmarks import craft
from benchmarks.load import percentile
from benchmarks.quality.checks import (
    CHECK_DESCRIPTIONS,
    CHECKS,
    EXTRA_CHECKS,
    RELEVANCE_THRESHOLD,
    Failure,
    PostLike,
    _excerpt,
    applies,
    relevance_text,
    score_post,
)
from benchmarks.quality.embedding import EMBEDDING_NAME, Embedder
from benchmarks.quality.generation import CHUNK, Generated
from benchmarks.quality.request_set import QUALITY_REQUESTS, REFERENCE_BODIES
from deployments.schemas import PostRequest

if TYPE_CHECKING:
    from benchmarks.report import ScenarioReport

PASS_TARGET = 0.90  # share of posts that must pass every contract check
# Share of posts that must pass every contract check *and* be free of every craft defect
# (benchmarks/craft.py), and the most posts any one defect class may touch.
PUBLISHABLE_TARGET = 0.95
DEFECT_CLASS_LIMIT = 1 / 40


@dataclass
class Evaluation:
    requests: list[PostRequest]
    posts: list[PostLike]
    cosines: list[list[float]]  # cosines[i][j]: body of post i against topic j
    threshold: float
    # REFERENCE_BODIES against their own topic, and against every other QUALITY_REQUESTS topic.
    reference_own: list[float] = field(default_factory=list)
    reference_other: list[float] = field(default_factory=list)
    verdicts: list[dict[str, Failure]] = field(default_factory=list)
    defects: list[dict[str, Failure]] = field(default_factory=list)  # craft.find_defects

    def __post_init__(self) -> None:
        self.verdicts = [
            score_post(post, request, self.cosines[i][i], self.threshold)
            for i, (post, request) in enumerate(zip(self.posts, self.requests))
        ]
        self.defects = [
            craft.find_defects(post, request) for post, request in zip(self.posts, self.requests)
        ]

    @property
    def own(self) -> list[float]:
        return [self.cosines[i][i] for i in range(len(self.posts))]

    @property
    def mismatched(self) -> list[float]:
        n = len(self.posts)
        return [self.cosines[i][j] for i in range(n) for j in range(n) if i != j]

    @property
    def shuffled(self) -> list[float]:
        """Each body against one fixed other topic (half the list away)."""
        n = len(self.posts)
        return [self.cosines[i][(i + n // 2) % n] for i in range(n)] if n > 1 else []

    @property
    def top1(self) -> int:
        """Posts whose own topic is the most similar of all the topics."""
        return sum(1 for i, row in enumerate(self.cosines) if max(row) == row[i])

    def passed(self, index: int, *, extra: bool = True) -> bool:
        """Every check passed (with extra=False: leaving out EXTRA_CHECKS)."""
        return all(
            why is None
            for name, why in self.verdicts[index].items()
            if extra or name not in EXTRA_CHECKS
        )

    @property
    def pass_rate(self) -> float:
        return sum(map(self.passed, range(len(self.posts)))) / len(self.posts)

    def publishable(self, index: int) -> bool:
        """Every check passed and no craft defect: a post a person would publish."""
        return self.passed(index) and all(why is None for why in self.defects[index].values())

    @property
    def publishable_rate(self) -> float:
        return sum(map(self.publishable, range(len(self.posts)))) / len(self.posts)


def evaluate(
    requests: Sequence[PostRequest],
    posts: Sequence[PostLike],
    embedder: Embedder,
    threshold: float = RELEVANCE_THRESHOLD,
) -> Evaluation:
    topics = [request.topic for request in requests]
    bodies = [relevance_text(post, request) for post, request in zip(posts, requests)]
    all_topics = [body["topic"] for body in QUALITY_REQUESTS]
    reference = embedder.cosine_matrix(list(REFERENCE_BODIES.values()), all_topics)
    own_index = list(REFERENCE_BODIES)
    return Evaluation(
        list(requests),
        list(posts),
        embedder.cosine_matrix(bodies, topics),
        threshold,
        reference_own=[row[own_index[k]] for k, row in enumerate(reference)],
        reference_other=[
            value
            for k, row in enumerate(reference)
            for j, value in enumerate(row)
            if j != own_index[k]
        ],
    )


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_report(evaluation: Evaluation, generated: Generated | None = None) -> ScenarioReport:
    from benchmarks.report import ScenarioReport, Table, fmt_percent

    ev = evaluation
    n = len(ev.posts)
    check_rows = []
    for name in CHECKS:
        relevant = [i for i in range(n) if name in ev.verdicts[i] and applies(name, ev.requests[i])]
        ok = sum(1 for i in relevant if ev.verdicts[i][name] is None)
        check_rows.append(
            [
                name,
                len(relevant),
                ok,
                len(relevant) - ok,
                fmt_percent(ok / len(relevant)) if relevant else "n/a",
                CHECK_DESCRIPTIONS[name],
            ]
        )
    passing = sum(map(ev.passed, range(n)))
    rate = passing / n if n else 0.0
    verdict = "met" if rate >= PASS_TARGET else "NOT met"
    check_rows.append(
        ["every check", n, passing, n - passing, fmt_percent(rate), "all of the above"]
    )
    contract = sum(ev.passed(i, extra=False) for i in range(n))
    notes = [
        f"Posts passing every check: {passing}/{n} = {fmt_percent(rate)} "
        f"(target ≥ {PASS_TARGET:.0%}): {verdict}.",
        f"Leaving out the extra checks ({', '.join(sorted(EXTRA_CHECKS))}): {contract}/{n} = "
        f"{fmt_percent(contract / n if n else 0.0)}.",
        "'posts' counts the posts a check applies to (call_to_action: only those that ask one).",
    ]
    if generated is not None:
        timing = f"{sum(generated.seconds.values()):.0f} s, " + ", ".join(
            f"{part} {tokens} tokens" for part, tokens in generated.new_tokens.items()
        )
        notes.append(
            f"Model `{generated.model_id}`, default generation settings, fixed seeds "
            f"({generated.requests[0].seed} + 1000 x i), batches of {CHUNK}; "
            f"generation {timing}."
        )
    checks_table = Table(
        title="Post quality: checks",
        description=(
            f"{n} fixed requests (every tone and length, 0-6 hashtags, some with audience or "
            "call to action) generated in-process the way an idle service writes them "
            "(`write_post` with every candidate on in-process engines decoding up to "
            f"{CHUNK} rows at once, `PostCompiler.compile`, one more body where it came out "
            "short), each "
            "scored against the post contract and for relevance."
        ),
        headers=["check", "posts", "passed", "failed", "pass rate", "what it checks"],
        rows=check_rows,
        notes=notes,
    )

    own, mismatched, shuffled = ev.own, ev.mismatched, ev.shuffled
    below = sum(1 for c in mismatched if c <= ev.threshold)
    relevance_table = Table(
        title="Post quality: relevance calibration",
        description=(
            f"cosine between {EMBEDDING_NAME} embeddings (mean pooling, L2-normalised) of each "
            "post's body (call to action removed) and its own topic, against the other topics "
            "of this run (all pairs, and one fixed 'shuffled' pairing); and of short on-topic "
            "bodies written by hand (REFERENCE_BODIES) against their topic and the others."
        ),
        headers=["pairs", "count", "min", "p5", "median", "p95", "max"],
        rows=[
            [
                label,
                len(values),
                min(values, default=float("nan")),
                percentile(values, 5),
                percentile(values, 50),
                percentile(values, 95),
                max(values, default=float("nan")),
            ]
            for label, values in (
                ("body vs own topic", own),
                ("body vs shuffled topic", shuffled),
                ("body vs every other topic", mismatched),
                ("hand-written body vs own topic", ev.reference_own),
                ("hand-written body vs other topics", ev.reference_other),
            )
        ],
        notes=[
            f"Threshold {ev.threshold:.2f}: {sum(1 for c in own if c > ev.threshold)}/{n} own "
            f"pairs above it, {below}/{len(mismatched)} mismatched pairs at or below it.",
            f"Own topic is the closest of all {n} topics for {ev.top1}/{n} posts.",
        ],
    )

    craft_table = craft.defects_table(
        ev.defects, [ev.passed(i) for i in range(n)], PUBLISHABLE_TARGET, DEFECT_CLASS_LIMIT
    )

    post_rows = []
    for i, (post, request) in enumerate(zip(ev.posts, ev.requests)):
        verdicts = {**ev.verdicts[i], **ev.defects[i]}
        failed = [name for name, why in verdicts.items() if why is not None]
        post_rows.append(
            [
                i + 1,
                _short(request.topic),
                request.tone.value,
                request.length.value,
                len(post.content),
                f"{len(post.hashtags)}/{request.num_hashtags}",
                "yes" if request.call_to_action else "",
                round(ev.own[i], 2),
                ", ".join(failed) or "pass",
            ]
        )
    posts_table = Table(
        title="Post quality: every post",
        description="One row per request: body length, hashtags returned/asked, relevance.",
        headers=["#", "topic", "tone", "length", "body chars", "tags", "CTA", "cosine", "result"],
        rows=post_rows,
    )

    failure_rows = []
    for i, (post, request) in enumerate(zip(ev.posts, ev.requests)):
        for name, why in {**ev.verdicts[i], **ev.defects[i]}.items():
            if why is None:
                continue
            if name == "relevance":  # what the body is about instead
                why = f"{why}; body: {_excerpt(relevance_text(post, request), 100)}"
            failure_rows.append([i + 1, _short(request.topic), name, _short(why, 180)])
    failures_table = Table(
        title="Post quality: failures",
        description="Every failed check with the reason and a short excerpt of the post.",
        headers=["#", "topic", "check", "why (excerpt)"],
        rows=failure_rows or [["—", "no failures", "—", "—"]],
    )
    return ScenarioReport(
        name="quality",
        tables=[checks_table, craft_table, relevance_table, posts_table, failures_table],
        headline={"pass_rate": rate, "publishable_rate": ev.publishable_rate},
    )
