"""`make prometheus`: Debian's Prometheus with `deploy/prometheus/`, pointed at the Ray that runs.

Ray's head writes the service-discovery file (every live node's metrics export) into its temp
dir: `/tmp/ray/` for `make run`, the local cluster's own folder for `make cluster` (recorded in
`.cluster/state.json`). This picks the cluster's while one is recorded, else `/tmp/ray/`'s,
writes the config with that path and the alert rules' absolute paths under `.prometheus/`, and
runs Prometheus in the foreground (Ctrl-C stops it).

    python deploy/run_prometheus.py [--listen 127.0.0.1:9090] [--discovery PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CLUSTER_STATE = REPO / ".cluster" / "state.json"
DISCOVERY_NAME = "prom_metrics_service_discovery.json"
DEFAULT_TEMP_DIR = Path("/tmp/ray")


def discovery_file(cluster_state: Path = CLUSTER_STATE) -> Path:
    """The local cluster's discovery file while one is recorded, else `make run`'s."""
    if cluster_state.exists():
        return Path(json.loads(cluster_state.read_text())["temp_dir"]) / DISCOVERY_NAME
    return DEFAULT_TEMP_DIR / DISCOVERY_NAME


def write_config(discovery: Path, path: Path) -> Path:
    """`deploy/prometheus/prometheus.yml` finding the nodes through `discovery`, written to
    `path` (its rule files by absolute path, so it runs from anywhere)."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    config["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(discovery)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:9090")
    parser.add_argument("--discovery", type=Path, default=None, help="default: see above")
    parser.add_argument("--storage", type=Path, default=REPO / ".prometheus")
    args = parser.parse_args(argv)
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus is missing: `make prometheus-install`", file=sys.stderr)
        return 1
    discovery = args.discovery or discovery_file()
    config = write_config(discovery, args.storage / "prometheus.yml")
    print(f"Prometheus on http://{args.listen}, finding Ray's nodes through {discovery}")
    os.execv(
        prometheus,
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={args.storage / 'data'}",
            f"--web.listen-address={args.listen}",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
