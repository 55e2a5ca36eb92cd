"""benchmarks/post_corpus.py: saved raw model text compiled again and scored, without a model."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import post_corpus
from benchmarks.quality.generation import Generated
from benchmarks.quality.request_set import quality_requests
from deployments.post.compiler import PostCompiler

BODY = (
    "Last year our team waited two days for every review. Pull requests piled up and people "
    "batched changes into huge diffs that nobody wanted to read.\n\nWe set one rule: every "
    "review gets a first answer within four hours. Reviews got smaller and merges got faster."
)


def _generated(raw_body: str) -> Generated:
    requests = quality_requests(2)
    raw = {
        "title": [["I'm ready to help. What's the topic?", "Our reviews took two days."]] * 2,
        "content": [[raw_body]] * 2,
        "hashtags": [["#Reviews #Teams"]] * 2,
    }
    compiler = PostCompiler("m")
    posts = [
        compiler.compile(r, raw["title"][i], raw["content"][i], raw["hashtags"][i][0])
        for i, r in enumerate(requests)
    ]
    return Generated(requests, posts, "m", raw=raw)


def test_a_corpus_round_trips_and_compiles_again(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "posts.jsonl"  # the results folder may not exist yet
    post_corpus.write_corpus(path, 424242, _generated("I'm Alexei, an AI assistant. " + BODY))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 2 and records[0]["raw"]["title"][1] == "Our reviews took two days."
    again = post_corpus.recompile(records)
    assert [r["post"] for r in again] == [r["post"] for r in records]
    first_only = post_corpus.recompile(records, first_candidate_only=True)
    assert first_only[0]["post"]["title"] != records[0]["post"]["title"]


def test_scores_count_craft_defects_per_seed_set(tmp_path: Path) -> None:
    records = post_corpus.records_of(7, _generated(BODY))
    records[1]["post"]["content"] = "I'm Alexei, and I lead a team.\n\n" + BODY
    scored = post_corpus.score(records, relevance=False)
    assert scored[0]["craft"]["invented_persona"] is None
    assert scored[1]["craft"]["invented_persona"] is not None
    summary = post_corpus.summary(records, scored)
    assert "seeds 7: 2 posts" in summary and "'invented_persona': 1" in summary
