"""deploy/prometheus/: the config and alert rules pass Prometheus's own checks, every alert
fires (and stays quiet) as its promtool unit tests say, and `make prometheus`
(deploy/run_prometheus.py) runs a real Prometheus over the Ray that runs (`make test` installs
Debian's prometheus package, which brings promtool)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.redis_server import free_port

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


def test_make_prometheus_finds_the_local_cluster_while_one_is_recorded(tmp_path: Path) -> None:
    from deploy.run_prometheus import DEFAULT_TEMP_DIR, DISCOVERY_NAME, discovery_file

    state = tmp_path / "state.json"
    assert discovery_file(state) == DEFAULT_TEMP_DIR / DISCOVERY_NAME  # `make run`'s Ray
    state.write_text(json.dumps({"temp_dir": "/tmp/lpc-abc"}))
    assert discovery_file(state) == Path("/tmp/lpc-abc") / DISCOVERY_NAME


def test_make_prometheus_scrapes_what_the_discovery_file_lists(tmp_path: Path) -> None:
    """deploy/run_prometheus.py as `make prometheus` runs it: a real Prometheus that loads the
    rules and takes its targets from the given discovery file."""
    discovery = tmp_path / "discovery.json"
    discovery.write_text(json.dumps([{"labels": {}, "targets": ["127.0.0.1:1"]}]))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROMETHEUS_DIR.parent / "run_prometheus.py"),
            f"--listen=127.0.0.1:{port}",
            f"--discovery={discovery}",
            f"--storage={tmp_path / 'prometheus'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        targets: list[str] = []
        while time.monotonic() < deadline and targets != ["127.0.0.1:1"]:
            time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/targets", timeout=5, trust_env=False
                ).json()
                targets = [t["labels"]["instance"] for t in answer["data"]["activeTargets"]]
        assert targets == ["127.0.0.1:1"]
        rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5, trust_env=False)
        assert len(rules.json()["data"]["groups"][0]["rules"]) >= 6
    finally:
        process.terminate()
        process.wait(30)
