"""post_corpus: posts of the quality requests kept with their raw model text, to read and re-score.

    python -m benchmarks.post_corpus generate --seed-bases 424242 23000011 --out posts.jsonl
    python -m benchmarks.post_corpus rescore posts.jsonl [--show DEFECT]

`generate` writes one JSON line per post: the seed set, the request, each part's raw model text
(exactly what the model deployments return), the compiled post and its verdicts. `rescore`
compiles the saved raw text again with the current `PostCompiler` and scores it, so a change of
post-processing is measured on the same samples without running the model (a change of prompts
or sampling needs `generate` again). Both print the contract and craft counts per seed set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import craft
from benchmarks.quality.checks import Draft, relevance_text, score_post
from benchmarks.quality.embedding import Embedder
from benchmarks.quality.generation import Generated, generate_posts
from benchmarks.quality.request_set import quality_requests
from deployments.schemas import PostRequest


def _record(seed_base: int, request: PostRequest, raw: dict[str, str], post: Any) -> dict:
    return {
        "seed_base": seed_base,
        "request": request.model_dump(mode="json"),
        "raw": raw,
        "post": {
            "title": post.title,
            "content": post.content,
            "hashtags": post.hashtags,
            "text": post.text,
        },
    }


def records_of(seed_base: int, generated: Generated) -> list[dict]:
    return [
        _record(seed_base, request, {part: texts[i] for part, texts in generated.raw.items()}, post)
        for i, (request, post) in enumerate(zip(generated.requests, generated.posts))
    ]


def write_records(path: Path, records: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_corpus(path: Path, seed_base: int, generated: Generated) -> None:
    write_records(path, records_of(seed_base, generated))


def generate(seed_bases: Sequence[int], out: Path) -> list[dict]:
    records: list[dict] = []
    for seed_base in seed_bases:
        requests = quality_requests(None, seed_base)
        generated = generate_posts(requests, on_step=lambda text: print(text, flush=True))
        records += records_of(seed_base, generated)
        write_records(out, records)
    return records


def recompile(records: Sequence[dict], *, first_candidate_only: bool = False) -> list[dict]:
    from deployments.post.compiler import PostCompiler

    compiler = PostCompiler("rescore")
    fresh = []
    for record in records:
        request = PostRequest.model_validate(record["request"])
        raw = record["raw"]
        if first_candidate_only:
            raw = {
                part: texts[:1] if isinstance(texts, list) else texts for part, texts in raw.items()
            }
        hashtags = raw.get("hashtags", "")
        if isinstance(hashtags, list):  # candidates (one hashtag list at most)
            hashtags = next(iter(hashtags), "")
        post = compiler.compile(request, raw.get("title", ""), raw.get("content", ""), hashtags)
        fresh.append(_record(record["seed_base"], request, raw, post))
    return fresh


def score(records: Sequence[dict], *, relevance: bool = True) -> list[dict[str, Any]]:
    """Each record's verdicts: contract checks (relevance with the embedder) and craft defects."""
    requests = [PostRequest.model_validate(r["request"]) for r in records]
    posts = [Draft(**r["post"]) for r in records]
    cosines: list[float | None] = [None] * len(records)
    if relevance:
        embedder = Embedder()
        bodies = [relevance_text(p, q) for p, q in zip(posts, requests)]
        matrix = embedder.cosine_matrix(bodies, [q.topic for q in requests])
        cosines = [matrix[i][i] for i in range(len(records))]
    scored = []
    for post, request, cosine in zip(posts, requests, cosines):
        contract = score_post(post, request, cosine)
        defects = craft.find_defects(post, request)
        scored.append({"contract": contract, "craft": defects})
    return scored


def summary(records: Sequence[dict], scored: Sequence[dict]) -> str:
    lines = []
    by_set: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        by_set.setdefault(record["seed_base"], []).append(i)
    for seed_base, rows in [*by_set.items(), ("all", list(range(len(records))))]:
        contract_ok = sum(all(v is None for v in scored[i]["contract"].values()) for i in rows)
        craft_ok = sum(all(v is None for v in scored[i]["craft"].values()) for i in rows)
        both = sum(
            all(v is None for v in scored[i]["contract"].values())
            and all(v is None for v in scored[i]["craft"].values())
            for i in rows
        )
        per_class = Counter(
            name for i in rows for name, why in scored[i]["craft"].items() if why is not None
        )
        per_check = Counter(
            name for i in rows for name, why in scored[i]["contract"].items() if why is not None
        )
        lines.append(
            f"seeds {seed_base}: {len(rows)} posts; contract {contract_ok}, craft {craft_ok}, "
            f"both {both}; defects {dict(per_class)}; contract failures {dict(per_check)}"
        )
    return "\n".join(lines)


def show(records: Sequence[dict], scored: Sequence[dict], defect: str) -> str:
    out = []
    for record, verdicts in zip(records, scored):
        why = {**verdicts["contract"], **verdicts["craft"]}.get(defect)
        if why is None and defect != "all":
            continue
        out.append(
            f"--- seeds {record['seed_base']} {record['request']['topic']!r}: {why}\n"
            f"{record['post']['text']}\n"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.post_corpus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate posts and keep their raw model text")
    gen.add_argument("--seed-bases", type=int, nargs="+", required=True)
    gen.add_argument("--out", type=Path, required=True)
    again = sub.add_parser("rescore", help="compile saved raw text again and score it")
    again.add_argument("corpus", type=Path)
    again.add_argument("--as-saved", action="store_true", help="score the saved posts as they are")
    again.add_argument("--no-relevance", action="store_true")
    again.add_argument(
        "--first-candidate-only",
        action="store_true",
        help="compile each part's first candidate alone (what one sample per part would give)",
    )
    again.add_argument("--show", default=None, help="print the posts failing this check ('all')")
    again.add_argument("--out", type=Path, default=None, help="write the recompiled corpus here")
    args = parser.parse_args(argv)
    if args.command == "generate":
        records = generate(args.seed_bases, args.out)
    else:
        records = [json.loads(line) for line in args.corpus.read_text().splitlines() if line]
        if not args.as_saved:
            records = recompile(records, first_candidate_only=args.first_candidate_only)
        if args.out:
            write_records(args.out, records)
    scored = score(records, relevance=not getattr(args, "no_relevance", False))
    if getattr(args, "show", None):
        print(show(records, scored, args.show))
    print(summary(records, scored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
