"""quality: does the real default model, compiled the way the service compiles it, write posts
that keep the post contract and stay on topic?

24 fixed requests (engineering, leadership, careers, product, data; every tone, length and
0-6 hashtags, some with an audience or a call to action) with fixed seeds are generated in this
process exactly as an idle service writes them: each post through `write_post` (every
candidate, `PostCompiler.compile`, one more body where the body came out short), its jobs on
in-process engines that decode up to `CHUNK` rows at once. Each post is scored by the
pure `check_*` functions of benchmarks/quality/checks.py (no model needed, see
tests/test_quality.py), for relevance by the cosine between all-MiniLM-L6-v2 embeddings of its
topic and its body, and for the defects a reader sees at once by benchmarks/craft.py. The
library that does all this is benchmarks/quality/; this module only runs it as a scenario.
"""

from __future__ import annotations

from benchmarks.context import Context
from benchmarks.plan import QUICK
from benchmarks.post_corpus import write_corpus
from benchmarks.quality.embedding import Embedder
from benchmarks.quality.evaluation import build_report, evaluate
from benchmarks.quality.generation import generate_posts
from benchmarks.quality.request_set import quality_requests
from benchmarks.report import ScenarioReport

QUICK_POSTS = 8  # --quick scores the first CHUNK requests only

STEP_COUNT = 4  # load model, write the posts, embed and score, report


def run(ctx: Context) -> ScenarioReport:
    """The `quality` scenario: generate, score, report (a few minutes on 2 CPU cores)."""
    import torch

    if ctx.baseline_threads:
        torch.set_num_threads(ctx.baseline_threads)
    requests = quality_requests(QUICK_POSTS if ctx.plan == QUICK else None, ctx.quality_seed_base)
    generated = generate_posts(requests, on_step=ctx.on_step, on_done=ctx.on_done)
    with ctx.step("quality: load embeddings and score"):
        embedder = Embedder()
        evaluation = evaluate(generated.requests, generated.posts, embedder)
    with ctx.step("quality: report"):
        report = build_report(evaluation, generated)
        if ctx.results_dir is not None:
            # Every post with its raw candidates, to read and to re-score offline.
            path = ctx.results_dir / f"quality-posts-{ctx.quality_seed_base}.jsonl"
            write_corpus(path, ctx.quality_seed_base, generated)
    return report
