"""`python -m benchmarks.redeploy [--out PATH/RESULTS.md] [--label NAME]`

A redeploy under load, with the real default model: clients keep asking for fresh posts
(`use_cache: false`, short) and for cached ones while the app is deployed again with changed
arguments (a new temperature: every replica is replaced, as `serve deploy` of an edited config
does). Every answer is classed: 200, a JSON 503 with Retry-After, a JSON 504, any other status
(a plain-text 500 is the defect), or no answer at all. Generations are in flight when the
redeploy starts, and the new replicas load the model while the old ones finish them, so those
generations take far longer than usual on 2 cores.

Run the same file against another checkout (PYTHONPATH=that checkout) to compare versions.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import machine_info
from benchmarks.paths import saved_results_path
from benchmarks.report import ScenarioReport, Table, render_table, write_results

DEFAULT_OUT = saved_results_path("redeploy")  # today's run
APP = "linkedin-posts"


def _classify(response: httpx.Response) -> str:
    json_body = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code == 200:
        return "200"
    if response.status_code == 503 and json_body and "retry-after" in response.headers:
        return "503 JSON + Retry-After"
    if response.status_code == 504 and json_body:
        return "504 JSON"
    return f"{response.status_code} {'JSON' if json_body else 'plain text'}"


class Load:
    """Client threads, each asking in a loop until stopped; every answer is recorded."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple[str, str, float, float]] = []  # kind, class, sent, seconds
        self.in_flight: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []

    def start(self, kind: str, clients: int) -> None:
        for worker in range(clients):
            thread = threading.Thread(target=self._client, args=(kind, worker), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _client(self, kind: str, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=600) as http:
            i = 0
            while not self.stop.is_set():
                if kind == "generation":
                    body = {"topic": f"Redeploy load {worker} {i}", "length": "short"}
                    body["use_cache"] = False
                else:
                    body = {"topic": f"Redeploy hit {worker % 4}", "length": "short", "seed": 1}
                sent = time.monotonic()
                with self.lock:
                    self.in_flight[kind] += 1
                try:
                    outcome = _classify(http.post("/v1/posts", json=body))
                except httpx.HTTPError as exc:
                    outcome = f"no answer ({type(exc).__name__})"
                with self.lock:
                    self.in_flight[kind] -= 1
                    self.outcomes.append((kind, outcome, sent, time.monotonic() - sent))
                i += 1
                if kind == "hit":
                    time.sleep(0.05)


def run(label: str, generation_clients: int, hit_clients: int) -> ScenarioReport:
    import ray
    from ray import serve

    from graph import build_app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = 8123
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args: dict[str, Any] = {"security": {"rate_limit_enabled": False}}
    serve.run(build_app(args), name=APP, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=600) as http:
        for worker in range(4):  # the posts the hit clients ask for
            http.post(
                "/v1/posts", json={"topic": f"Redeploy hit {worker}", "length": "short", "seed": 1}
            )
    load = Load(url)
    load.start("generation", generation_clients)
    load.start("hit", hit_clients)
    time.sleep(20)  # generations are in flight
    redeploy_at = time.monotonic()
    in_flight = dict(load.in_flight)
    changed = {**args, "generation": {"temperature": 0.5}}
    serve.run(build_app(changed), name=APP, route_prefix="/")
    redeployed_s = time.monotonic() - redeploy_at
    time.sleep(10)  # requests sent to the new replicas too
    load.stop.set()
    for thread in load.threads:
        thread.join(timeout=900)
    serve.shutdown()
    ray.shutdown()

    rows = []
    for kind in ("generation", "hit"):
        for phase, keep in (
            ("sent before the redeploy", lambda sent: sent < redeploy_at),
            ("sent during or after it", lambda sent: sent >= redeploy_at),
        ):
            counts = Counter(o for k, o, sent, _ in load.outcomes if k == kind and keep(sent))
            slowest = max(
                (s for k, _, sent, s in load.outcomes if k == kind and keep(sent)), default=0.0
            )
            rows.append([kind, phase, sum(counts.values()), _counts(counts), round(slowest, 1)])
    lost = sum(1 for _, o, _, _ in load.outcomes if not o.startswith(("200", "503 JSON", "504")))
    summary = Table(
        title=f"redeploy: {label}",
        description=f"{generation_clients} clients asking for fresh short posts and {hit_clients} "
        "for cached ones; the app redeployed with a new temperature 20 s in "
        f"({in_flight.get('generation', 0)} generations in flight then); serve.run of the new "
        f"version returned after {redeployed_s:.0f} s.",
        headers=["requests", "answered 200", "JSON 503/504", "lost (5xx other, no answer)"],
        rows=[
            [
                len(load.outcomes),
                sum(1 for _, o, _, _ in load.outcomes if o == "200"),
                sum(1 for _, o, _, _ in load.outcomes if o.startswith(("503 JSON", "504"))),
                lost,
            ]
        ],
    )
    detail = Table(
        title=f"redeploy: {label}, by kind",
        description="Answers by kind of request and when it was sent; the slowest answer in s.",
        headers=["kind", "sent", "requests", "answers", "slowest s"],
        rows=rows,
    )
    return ScenarioReport(name=f"redeploy-{label}", tables=[summary, detail])


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.most_common()) or "-"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redeploy", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--generation-clients", type=int, default=6)
    parser.add_argument("--hit-clients", type=int, default=2)
    args = parser.parse_args(argv)
    machine = machine_info(argv, module="benchmarks.redeploy")
    report = run(args.label, args.generation_clients, args.hit_clients)
    print("\n\n".join(map(render_table, report.tables)))
    print("wrote", ", ".join(map(str, write_results(args.out, machine, [report]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
