"""deployments.edge.readiness without Ray: busy is ready; only a deployment without a running
replica is not."""

from __future__ import annotations

import asyncio

from ray.serve.exceptions import BackPressureError

from deployments.edge.readiness import DeploymentState, Probe, decide, probe

NAMES = ("Ingress", "CacheLookup", "TitleModel", "ContentModel", "HashtagModel", "Compiler")
CACHE = {"l1": "ok", "l2": "ok", "l3": "ok"}


def healthy(**changes: DeploymentState) -> dict[str, DeploymentState]:
    return {name: changes.get(name, DeploymentState("HEALTHY", 1)) for name in NAMES}


def probes(*outcomes: str, waiting: int = 0) -> dict[str, Probe]:
    return {
        part: Probe(o, {"waiting": waiting} if o == "ok" else {})  # type: ignore[arg-type]
        for part, o in zip(("title", "content", "hashtags"), outcomes)
    }


def test_idle_and_healthy_is_ok() -> None:
    verdict = decide(healthy(), probes("ok", "ok", "ok"), CACHE)
    assert (verdict.status_code, verdict.body["status"], verdict.busy) == (200, "ok", False)


def test_shed_or_slow_probes_are_ready_and_busy() -> None:
    for outcomes in (("busy", "busy", "busy"), ("ok", "busy", "ok")):
        verdict = decide(healthy(), probes(*outcomes), CACHE)
        assert verdict.status_code == 200
        assert verdict.body["status"] == "busy"
    waiting = decide(healthy(), probes("ok", "ok", "ok", waiting=3), CACHE)
    assert (waiting.status_code, waiting.body["status"]) == (200, "busy")


def test_a_deployment_without_a_running_replica_is_not_ready() -> None:
    for state in (DeploymentState("UPDATING", 0), DeploymentState("UNHEALTHY", 0)):
        verdict = decide(healthy(ContentModel=state), probes("ok", "busy", "ok"), CACHE)
        assert verdict.status_code == 503
        assert verdict.body["not_running"] == ["ContentModel"]


def test_a_failing_deployment_that_still_answers_is_ready_and_degraded() -> None:
    # After a node dies under load Serve keeps ContentModel UNHEALTHY until it has every replica
    # the load asks for; the replicas it has answer all the while.
    for status in ("UNHEALTHY", "DEPLOY_FAILED"):
        state = DeploymentState(status, 2)
        verdict = decide(healthy(ContentModel=state), probes("ok", "ok", "ok"), CACHE)
        assert (verdict.status_code, verdict.body["status"]) == (200, "degraded")
        assert verdict.body["failing"] == ["ContentModel"]
        assert "not_running" not in verdict.body


def test_a_redeploy_with_old_replicas_running_is_ready() -> None:
    verdict = decide(healthy(ContentModel=DeploymentState("UPDATING", 1)), probes("ok"), CACHE)
    assert verdict.status_code == 200


def test_without_the_controller_a_failed_probe_decides() -> None:
    assert decide(None, probes("ok", "busy", "ok"), CACHE).status_code == 200
    assert decide(None, probes("ok", "failed", "ok"), CACHE).status_code == 503


def test_a_degraded_cache_layer_is_ready_and_says_so() -> None:
    verdict = decide(healthy(), probes("ok", "ok", "ok"), {**CACHE, "l2": "degraded"})
    assert (verdict.status_code, verdict.body["status"]) == (200, "degraded")


async def test_probe_outcomes() -> None:
    async def answers() -> dict:
        return {"waiting": 0}

    async def sheds() -> dict:
        raise BackPressureError(num_queued_requests=1, max_queued_requests=1)

    async def hangs() -> dict:
        await asyncio.sleep(10)
        return {}

    async def dies() -> dict:
        raise RuntimeError("actor died")

    assert (await probe(answers, 0.5)).outcome == "ok"
    assert (await probe(sheds, 0.5)).outcome == "busy"
    assert (await probe(hangs, 0.05)).outcome == "busy"
    failed = await probe(dies, 0.5)
    assert (failed.outcome, failed.error) == ("failed", "RuntimeError")
