"""The Compiler of d2e2509 on held-out raw text written by later code.

Run with PYTHONPATH on a d2e2509 worktree:
    PYTHONPATH=<worktree> python before_compile.py quality-posts.jsonl before.jsonl
Each post gets the candidates the old writer would have had: two bodies, and the third only
where the old Compiler left the body short of its band (the raw text keeps it when the newer
writer asked for it too; the script counts the posts where it did not).
"""

import json
import sys
from pathlib import Path

import benchmarks.post_corpus as corpus
from deployments.post.compiler import PostCompiler, body_below_band
from deployments.schemas import PostRequest

source, target = sys.argv[1], sys.argv[2]
compiler = PostCompiler("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
missing = 0
rows = []
for line in Path(source).read_text().splitlines():
    record = json.loads(line)
    request = PostRequest.model_validate(record["request"])
    raw = record["raw"]
    tags = raw.get("hashtags", "")
    tags = tags[0] if isinstance(tags, list) and tags else (tags if isinstance(tags, str) else "")
    bodies = raw["content"][:2]
    post = compiler.compile(request, raw["title"], bodies, tags)
    if body_below_band(request, post.content):
        if len(raw["content"]) > 2:
            bodies = raw["content"][:3]
            post = compiler.compile(request, raw["title"], bodies, tags)
        else:
            missing += 1
    rows.append(corpus._record(record["seed_base"], request, {**raw, "content": bodies}, post))
corpus.write_records(Path(target), rows)
print("posts where the old writer would have asked a third body the text lacks:", missing)
