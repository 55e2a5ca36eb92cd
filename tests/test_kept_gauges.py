"""KeptGauges (deployments.metrics): Ray drops a gauge from its export a while after its last
`set`, so each last value is set again and again (tests/test_observability.py sees them in a
real Prometheus)."""

from __future__ import annotations

import time
from typing import Any

from deployments.metrics import KeptGauges


class FakeGauge:
    def __init__(self) -> None:
        self.sets: list[tuple[float, dict[str, str] | None]] = []

    def set(self, value: float, tags: Any = None) -> None:
        self.sets.append((value, tags))


def test_each_last_value_is_set_again_until_it_changes() -> None:
    kept = KeptGauges(interval_s=0.02)
    rows, plain = FakeGauge(), FakeGauge()
    kept.set(rows, 3, {"part": "title", "state": "running"})
    kept.set(rows, 1, {"part": "title", "state": "waiting"})
    kept.set(plain, 300)
    kept.set(rows, 0, {"part": "title", "state": "running"})  # the load fell
    time.sleep(0.3)
    again = rows.sets[3:]
    assert (0, {"part": "title", "state": "running"}) in again
    assert (1, {"part": "title", "state": "waiting"}) in again
    assert (3, {"part": "title", "state": "running"}) not in again, "only the last value"
    assert plain.sets.count((300, None)) >= 3
