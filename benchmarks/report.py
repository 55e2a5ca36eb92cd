"""Tables (stdout and markdown), RESULTS.md and the scaling plots."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISSING = "—"


@dataclass
class Table:
    title: str
    description: str  # one sentence: what was compared, and how
    headers: Sequence[str]
    rows: list[Sequence[Any]]
    notes: list[str] = field(default_factory=list)


def records_table(
    title: str, description: str, records: Sequence[Any], columns: Sequence[tuple[str, str]]
) -> Table:
    """A table with one row per record: `columns` are (header, the record's attribute)."""
    return Table(
        title=title,
        description=description,
        headers=[header for header, _ in columns],
        rows=[[getattr(record, name) for _, name in columns] for record in records],
    )


@dataclass
class Series:
    """One line on a scaling plot: a target measured at several concurrency levels."""

    label: str
    concurrency: list[int] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p95_ms: list[float] = field(default_factory=list)

    def add(self, concurrency: int, throughput: float, p50_ms: float, p95_ms: float) -> None:
        self.concurrency.append(concurrency)
        self.throughput.append(throughput)
        self.p50_ms.append(p50_ms)
        self.p95_ms.append(p95_ms)


@dataclass
class ScenarioReport:
    name: str
    tables: list[Table]
    series: list[Series] = field(default_factory=list)
    throughput_unit: str = "req/s"
    headline: dict[str, float] = field(default_factory=dict)  # numbers later scenarios compare to
    plot: Path | None = None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: Any) -> str:
    """A cell: integers as is, floats to three significant figures or so, None/NaN as a dash."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        if value == 0:
            return "0"
        return f"{value:.3g}"
    return str(value)


def ratio(numerator: float, denominator: float) -> float:
    if _is_missing(numerator) or _is_missing(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def fmt_ratio(value: float) -> str:
    return MISSING if _is_missing(value) else f"{value:.2f}x"


def fmt_percent(value: float) -> str:
    return MISSING if _is_missing(value) else f"{100 * value:.1f}%"


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; columns whose cells are all numbers are right-aligned."""
    width = len(headers)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row has {len(row)} cells, expected {width}: {row!r}")

    def cell(value: Any) -> str:
        return fmt(value).replace("|", "\\|").replace("\n", " ")

    right = [
        bool(rows) and all(_numeric(row[i]) or _is_missing(row[i]) for row in rows)
        for i in range(width)
    ]
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "| " + " | ".join("---:" if r else "---" for r in right) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_table(table: Table) -> str:
    parts = [f"### {table.title}", table.description, markdown_table(table.headers, table.rows)]
    if table.notes:
        parts.append("\n".join(f"- {note}" for note in table.notes))
    return "\n\n".join(parts)


def render_results(
    machine: dict[str, str], reports: Sequence[ScenarioReport], results_path: Path
) -> str:
    lines = ["# Benchmark results", ""]
    lines += [f"- **{key}**: {value}" for key, value in machine.items()]
    lines.append("")
    lines.append(
        "Every ratio compares numbers measured in this same run. Latencies are per request, "
        "client side (loopback); throughput counts successful requests over the wall time from "
        "the first send to the last answer."
    )
    for report in reports:
        lines += ["", f"## {report.name}", ""]
        lines.append("\n\n".join(render_table(t) for t in report.tables))
        if report.plot is not None:
            link = os.path.relpath(report.plot, results_path.parent)
            lines += ["", f"![{report.name}: throughput and latency by concurrency]({link})"]
    return "\n".join(lines) + "\n"


def plot_scaling(path: Path, title: str, series: Sequence[Series], unit: str) -> Path:
    """Throughput and p50/p95 latency against concurrency, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for line in series:
        (drawn,) = left.plot(line.concurrency, line.throughput, marker="o", label=line.label)
        color = drawn.get_color()
        right.plot(
            line.concurrency, line.p50_ms, marker="o", color=color, label=f"{line.label} p50"
        )
        right.plot(
            line.concurrency,
            line.p95_ms,
            marker="x",
            linestyle="--",
            color=color,
            label=f"{line.label} p95",
        )
    levels = sorted({c for line in series for c in line.concurrency})
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_locator(FixedLocator(levels))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.set_xlabel("concurrent clients")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    left.set_ylabel(unit)
    left.set_title("throughput")
    right.set_ylabel("latency (ms)")
    left.set_ylim(bottom=0)
    right.set_yscale("log")
    right.yaxis.set_major_formatter(ScalarFormatter())
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_title("latency")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_results(
    path: Path, machine: dict[str, str], reports: Sequence[ScenarioReport]
) -> list[Path]:
    """RESULTS.md at `path`, plots under `path.parent / "plots"`; returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        if report.series:
            report.plot = plot_scaling(
                path.parent / "plots" / f"{report.name}.png",
                f"{report.name}: {', '.join(s.label for s in report.series)}",
                report.series,
                report.throughput_unit,
            )
            written.append(report.plot)
    path.write_text(render_results(machine, reports, path))
    written.append(path)
    return written
