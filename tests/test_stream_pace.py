"""deployments.streaming without Ray: a replica's pace, and queued groups sent at that pace."""

from __future__ import annotations

import asyncio
import time

from deployments.settings import GenerationSettings
from deployments.streaming import StreamPace, queued_until, stream_pace


def test_the_interval_stretches_with_the_streams_beyond_the_full_rate() -> None:
    pace = StreamPace(0.1, full_rate_streams=4)
    with pace.stream(), pace.stream():
        assert pace.interval_s() == 0.1
        with pace.stream(), pace.stream(), pace.stream(), pace.stream():
            assert pace.streams == 6
            assert abs(pace.interval_s() - 0.15) < 1e-9
    assert pace.streams == 0 and pace.interval_s() == 0.1


def test_a_stream_that_fails_is_no_longer_counted() -> None:
    pace = StreamPace(0.1, full_rate_streams=1)
    try:
        with pace.stream():
            raise RuntimeError("the caller went away")
    except RuntimeError:
        pass
    assert pace.streams == 0


def test_the_pace_comes_from_the_generation_settings() -> None:
    pace = stream_pace(GenerationSettings(stream_interval_ms=50, stream_full_rate_streams=2))
    assert pace.base_s == 0.05 and pace.full_rate_streams == 2


def test_queued_groups_follow_a_pace_asked_at_each_send() -> None:
    asked: list[float] = []

    def interval() -> float:
        asked.append(time.perf_counter())
        return 0.2

    async def main() -> list[list[int]]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def produce() -> None:
            for item in range(6):
                queue.put_nowait(item)
                await asyncio.sleep(0.05)
            finished.set_result(None)

        producer = asyncio.ensure_future(produce())
        groups = [group async for group in queued_until(queue, finished, interval)]
        await producer
        return groups

    groups = asyncio.run(main())
    assert [item for group in groups for item in group] == list(range(6))
    # The first goes at once; then 0.2 s between groups gathers the pieces of about 4 x 50 ms.
    assert groups[0] == [0] and len(groups) <= 3 and asked
