"""Starting and stopping what the benchmarks measure: Ray, Serve, the graph and a constant
endpoint that serves as the framework's ceiling. Everything listens on loopback only."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import httpx
from ray import serve
from starlette.requests import Request

GRAPH_APP = "linkedin-posts"
CONSTANT_APP = "constant"
CONSTANT_ROUTE = "/const"
RAY_CPUS = 2


@serve.deployment(
    name="Constant",
    max_ongoing_requests=4096,
    ray_actor_options={"num_cpus": 0.1},
)
class Constant:
    """The cheapest possible Serve endpoint: reads the body and answers a constant. What it
    reaches is the ceiling of the proxy and one replica on this machine."""

    async def __call__(self, request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout_s: float) -> dict[str, Any]:
    """Poll GET url until it answers 200; its JSON body (the graph's /readyz report)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(timeout=10, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    # vLLM's /health answers 200 with an empty body
                    return dict(response.json()) if response.content else {}
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s (last: {last})")


class ServeApps:
    """One Ray instance for the whole run; Serve restarted whenever the graph's settings change.

    `deploy` is idempotent for the same settings, so scenarios that share settings share the
    running graph (and its warm caches)."""

    def __init__(self, ready_timeout_s: float = 300) -> None:
        self.ready_timeout_s = ready_timeout_s
        self.base_url = ""
        self.readiness: dict[str, Any] = {}
        self._deployed: str | None = None
        self._ray_started = False
        self._serve_started = False

    def _ensure_ray(self) -> None:
        if self._ray_started:
            return
        import ray

        ray.init(
            num_cpus=RAY_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        self._ray_started = True

    def deploy(self, args: dict[str, Any], *, with_constant: bool = False) -> str:
        """The graph built from `args` at route "/", plus the constant endpoint at /const when
        asked; returns the base URL once GET /readyz answers 200."""
        key = json.dumps({"args": args, "constant": with_constant}, sort_keys=True, default=str)
        if key == self._deployed:
            return self.base_url
        self._ensure_ray()
        self.stop_serve()
        from graph import build_app

        port = free_port()
        self._serve_started = True
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name=GRAPH_APP, route_prefix="/")
        if with_constant:
            serve.run(Constant.bind(), name=CONSTANT_APP, route_prefix=CONSTANT_ROUTE)
        self.base_url = f"http://127.0.0.1:{port}"
        self.readiness = wait_ready(f"{self.base_url}/readyz", self.ready_timeout_s)
        if with_constant:
            wait_ready(f"{self.base_url}{CONSTANT_ROUTE}", self.ready_timeout_s)
        self._deployed = key
        return self.base_url

    def stop_serve(self) -> None:
        if self._serve_started:
            serve.shutdown()
        self._serve_started = False
        self._deployed = None
        self.base_url = ""

    def close(self) -> None:
        self.stop_serve()
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False
