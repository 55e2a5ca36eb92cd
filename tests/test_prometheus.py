"""deploy/prometheus/: the config and alert rules pass Prometheus's own checks, and every alert
fires (and stays quiet) as its promtool unit tests say (`make test` installs Debian's
prometheus package, which brings promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make prometheus-install` (Debian's prometheus package)"
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def test_the_config_and_the_rules_are_valid(promtool: str) -> None:
    checked = _run(promtool, "check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout + checked.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say(promtool: str) -> None:
    tested = _run(promtool, "test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_and_tells_the_operator_what_to_do() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]  # a test where it fires, not only one where it is quiet
    }
    for rule in rules:
        assert rule["alert"] in tested, f"{rule['alert']} never fires in alerts_test.yml"
        assert rule["annotations"]["action"], f"{rule['alert']} has no action"
        assert rule["labels"]["severity"] in ("page", "warn")
