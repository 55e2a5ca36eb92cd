"""A call whose replica dies before answering is sent once more (deployments.replica_calls), on
a real Serve app: the replica exits in the middle of its first request, as one stopped by a
scale-down or lost with its node does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray import serve
from ray.exceptions import ActorDiedError, RayTaskError
from ray.serve.handle import DeploymentHandle

from deployments import replica_calls


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, health_check_period_s=1)
class DiesOnce:
    """Exits the process on the first call it ever gets (a marker file remembers it)."""

    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    async def answer(self, value: int) -> int:
        if not self.marker.exists():
            self.marker.write_text("died")
            await asyncio.sleep(0.2)
            os._exit(1)
        return value * 2


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Caller:
    def __init__(self, target: DeploymentHandle) -> None:
        self.target = target

    async def plain(self, value: int) -> int:
        return await self.target.answer.remote(value)

    async def retried(self, value: int) -> int:
        return await replica_calls.call(lambda: self.target.answer.remote(value), "answer")


@pytest.fixture
def caller(ray_session: None, tmp_path: Path) -> Iterator[DeploymentHandle]:
    handle = serve.run(
        Caller.bind(DiesOnce.bind(str(tmp_path / "died"))), name="replica-calls", route_prefix=None
    )
    yield handle
    # Serve itself goes too: its proxy took the default port, and a later module's app would
    # join this instance instead of starting on a port of its own.
    serve.shutdown()


def test_a_call_whose_replica_dies_is_sent_again(caller: DeploymentHandle) -> None:
    assert caller.retried.remote(21).result(timeout_s=120) == 42


def test_without_it_the_death_reaches_the_caller(caller: DeploymentHandle) -> None:
    with pytest.raises(ActorDiedError):
        caller.plain.remote(21).result(timeout_s=120)


def test_only_the_called_replicas_own_death_counts() -> None:
    died = ActorDiedError()
    assert replica_calls.replica_died(died)
    # Raised by something the replica called: it arrives wrapped, and the replica is alive.
    wrapped = RayTaskError("answer", "traceback", died).as_instanceof_cause()
    assert isinstance(wrapped, ActorDiedError) and not replica_calls.replica_died(wrapped)
    assert not replica_calls.replica_died(ValueError())
