"""Readiness: is every deployment of the graph there to answer, and is it busy?

A readiness probe pulls a pod out of its Service when it fails, so it must fail only when the
graph cannot answer, never because it is busy. Two sources, each bounded in time:

- **Serve's controller** knows whether every deployment has a running replica (a replica that is
  dead, unhealthy or still starting is not running). Asking it costs no queue slot of ours.
- **A short probe of each model deployment** (`info`) tells how many rows are waiting. Under full
  load the probe is shed or does not answer in time: that is *busy*, not *not ready*.

Not ready (503) only when a deployment has no running replica, or when, with no word from the
controller, a probe failed for another reason than load. A deployment in a failure status that
still has a running replica answers: Serve leaves UNHEALTHY only once it has every replica it
wants, which after a node dies under load can take as long as the load lasts. That is
`degraded`, with the deployment named, not a pod to pull out of its Service.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

FAILED_STATUSES = frozenset({"UNHEALTHY", "DEPLOY_FAILED"})


@dataclass(frozen=True)
class DeploymentState:
    status: str  # Serve's DeploymentStatus: HEALTHY, UPDATING, UPSCALING, UNHEALTHY, ...
    running: int  # replicas in state RUNNING


@dataclass(frozen=True)
class Probe:
    outcome: Literal["ok", "busy", "failed"]
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    busy: bool
    body: dict[str, Any]

    @property
    def status_code(self) -> int:
        return 200 if self.ready else 503


def decide(
    deployments: Mapping[str, DeploymentState] | None,
    probes: Mapping[str, Probe],
    cache: Mapping[str, str],
) -> Readiness:
    """The verdict from the controller's view (None: it did not answer), the model probes and
    the cache layers' status."""
    missing: list[str] = []
    failing: list[str] = []
    if deployments is not None:
        missing = sorted(name for name, state in deployments.items() if state.running < 1)
        failing = sorted(
            name
            for name, state in deployments.items()
            if state.running >= 1 and state.status in FAILED_STATUSES
        )
        ready = not missing
    else:
        ready = all(probe.outcome != "failed" for probe in probes.values())
    busy = any(
        probe.outcome == "busy" or probe.info.get("waiting", 0) > 0 for probe in probes.values()
    )
    if not ready:
        status = "not_ready"
    elif failing or "degraded" in cache.values():
        status = "degraded"
    else:
        status = "busy" if busy else "ok"
    body: dict[str, Any] = {
        "status": status,
        "ready": ready,
        "busy": busy,
        "models": {part: probe.info or {"probe": probe.outcome} for part, probe in probes.items()},
        "cache": dict(cache),
    }
    if deployments is not None:
        body["deployments"] = {
            name: {"status": state.status, "running": state.running}
            for name, state in deployments.items()
        }
    else:
        body["deployments"] = "unknown: Serve's controller did not answer in time"
    if missing:
        body["not_running"] = missing
    if failing:
        body["failing"] = failing
    return Readiness(ready, busy, body)


async def probe(call: Callable[[], Awaitable[dict[str, Any]]], timeout_s: float) -> Probe:
    """One model deployment's `info`, within `timeout_s`; shed or slow is busy."""
    try:
        info = await asyncio.wait_for(call(), timeout=timeout_s)
    except (asyncio.TimeoutError, BackPressureError):
        return Probe("busy")
    except Exception as exc:
        return Probe("failed", error=type(exc).__name__)
    return Probe("ok", info)


def deployment_states(status: Any, app_name: str) -> dict[str, DeploymentState] | None:
    """Per deployment of `app_name`, from `serve.status()`; None when the app is not there."""
    app = status.applications.get(app_name)
    if app is None:
        return None
    return {
        name: DeploymentState(
            status=str(getattr(d.status, "value", d.status)),
            running=int(d.replica_states.get("RUNNING", 0)),
        )
        for name, d in app.deployments.items()
    }


async def check_readiness(
    app_name: str,
    models: Mapping[str, DeploymentHandle],
    cache: Mapping[str, str],
    timeout_s: float,
) -> Readiness:
    """The controller's view of `app_name` and each model deployment's `info`, asked at once,
    each within `timeout_s`, and the verdict (`decide`)."""
    from ray import serve

    async def controller_view() -> dict[str, DeploymentState] | None:
        return deployment_states(await asyncio.to_thread(serve.status), app_name)

    async def info(handle: DeploymentHandle) -> dict[str, Any]:
        return await handle.info.remote()

    deployments, *probes = await asyncio.gather(
        asyncio.wait_for(controller_view(), timeout_s),
        *(probe(functools.partial(info, handle), timeout_s) for handle in models.values()),
        return_exceptions=True,
    )
    if isinstance(deployments, BaseException):
        deployments = None
    return decide(deployments, dict(zip(models, probes)), cache)
