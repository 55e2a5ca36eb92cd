"""deploy/grafana/linkedin-posts.json, offline: every panel says what it shows, every query is
PromQL that Prometheus accepts, and every metric of the graph it reads is one the code records.
(Its queries against a real Prometheus over a running graph: tests/test_observability.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "linkedin-posts.json"
# The suffixes Prometheus adds to a counter's or a histogram's series.
SERIES_SUFFIX = re.compile(r"_(total|bucket|sum|count)$")


def _targets() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def test_every_panel_says_what_it_shows_and_queries_something() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["description"] and panel["targets"], panel["title"]
    assert len({panel["id"] for panel in panels}) == len(panels)


def test_every_query_is_promql_that_prometheus_accepts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make prometheus-install`"
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, (_, expr) in enumerate(_targets())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("title", "expr"), _targets())
def test_every_graph_metric_a_panel_reads_is_recorded_by_the_code(title: str, expr: str) -> None:
    code = "\n".join(path.read_text() for path in (REPO / "deployments").rglob("*.py"))
    for name in re.findall(r"ray_(linkedin_posts_\w+)", expr):
        base = SERIES_SUFFIX.sub("", name)
        assert f'"{base}"' in code or f'"{base.removeprefix("linkedin_posts_")}"' in code, (
            f"{title}: {name} is recorded nowhere in deployments/"
        )
