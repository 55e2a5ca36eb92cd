"""queues: the graph at 128 clients, cache off, under the model deployments' old and new
admission limits: 504s after the request timeout, or fast 503s."""

from __future__ import annotations

from typing import Any

from benchmarks.context import Context
from benchmarks.report import ScenarioReport, Table
from benchmarks.scenarios.common import LENGTH, OVERLOAD_HEADERS, _overload_row, describe_args
from benchmarks.scenarios.tuning import _each_variant, _model_queues

QUEUE_CLIENTS = 128
# (ongoing, queued) requests per model replica.
QUEUE_VARIANTS: dict[str, tuple[int, int]] = {
    "before: 64 ongoing + 256 queued per model replica": (64, 256),
    "16 ongoing + 16 queued per model replica (batches of 16)": (16, 16),
    "now: 32 ongoing + 32 queued per model replica": (32, 32),
}


def queues(ctx: Context) -> ScenarioReport:
    """The graph at 128 clients, cache off, under the model deployments' old and new admission
    limits, one after the other in the same run: 504s after the request timeout, or fast 503s."""
    variants = {
        label: {"deployments": _model_queues(*limits)} for label, limits in QUEUE_VARIANTS.items()
    }
    rows: list[list[Any]] = []
    described: list[str] = []
    for label, args, run in _each_variant(ctx, "queues", variants, QUEUE_CLIENTS):
        described.append(f"{label}: " + describe_args(args))
        rows.append(_overload_row(label, run.stats()))
    table = Table(
        title=f"Model queue limits at {QUEUE_CLIENTS} clients, cache off: before and after",
        description=(
            f"POST /v1/posts, `{LENGTH}` posts, cache off, {QUEUE_CLIENTS} clients in closed "
            "loop; the model deployments admit the given requests per replica and answer the "
            "rest at once with 503 + Retry-After."
        ),
        headers=["model queue limits", *OVERLOAD_HEADERS],
        rows=rows,
        notes=described,
    )
    return ScenarioReport(name="queues", tables=[table], throughput_unit="posts/s")
