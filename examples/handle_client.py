"""Posts through Python handles, from a Ray job of its own (not the driver that deployed the app).

    python examples/handle_client.py                  # joins the running cluster (make cluster)
    python examples/handle_client.py --address 10.0.0.5:6390
    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        -- python examples/handle_client.py

It makes one post, a batch of three, and 16 posts at once, and prints them (`--json`: one JSON
object per line, as the tests read them). Without `--address` it joins the cluster that
`ray.init(address="auto")` finds: the one `make cluster` started, or the job's own under
`ray job submit`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import ray
from ray import serve

APP = "linkedin-posts"


async def many(handle: Any, count: int) -> list[dict[str, Any]]:
    """`count` posts at once: each `.remote()` is its own request, batched by the replicas."""
    requests = [
        {"topic": f"Lessons from shipping feature {i}", "length": "short", "num_hashtags": 2}
        for i in range(count)
    ]
    return list(await asyncio.gather(*(handle.generate.remote(r) for r in requests)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="auto", help="the cluster's GCS (default: auto)")
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    # An explicit address: a connection to an existing cluster, never a new local one.
    ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
    handle = serve.get_app_handle(APP)

    def show(label: str, posts: list[dict[str, Any]], seconds: float) -> None:
        for post in posts:
            if args.json:
                print(json.dumps({"call": label, "seconds": round(seconds, 2), "post": post}))
            else:
                print(f"--- {label} ({seconds:.1f} s) ---\n{post['text']}\n")

    started = time.perf_counter()
    one = handle.generate.remote({"topic": "Why code review makes teams faster"}).result()
    show("one", [one], time.perf_counter() - started)

    started = time.perf_counter()
    batch = [
        {"topic": "Mentoring junior engineers", "length": "short"},
        {"topic": "Writing design docs people read", "length": "short"},
        {"topic": "On-call without burnout", "length": "short"},
    ]
    posts = handle.generate_batch.remote(batch).result()
    show("batch", posts, time.perf_counter() - started)

    started = time.perf_counter()
    concurrent = asyncio.run(many(handle, args.concurrent))
    show("concurrent", concurrent, time.perf_counter() - started)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
