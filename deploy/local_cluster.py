"""A Ray cluster of three nodes on this machine, with the graph deployed on it.

    python deploy/local_cluster.py up [--config config/cluster-local.yaml]   # make cluster
    python deploy/local_cluster.py status                                     # make cluster-status
    python deploy/local_cluster.py down                                       # make cluster-down

`up` starts a head node and two worker nodes with `ray start` (one logical CPU each, so the
graph's replicas must spread over the nodes), `serve deploy`s the config and waits until the app
is running. The head's GCS listens on port 6390, not Ray's default 6379, which Redis holds on
these machines. Serve's HTTP proxy runs on the head only (`proxy_location: HeadOnly`): the nodes
share this machine's addresses, and proxies on every node would all want port 8000.

Ray 2.60's dashboard, which `serve deploy` and `serve status` talk to, asks for a token: `up`
runs them with `RAY_AUTH_MODE=token`, and they read the token Ray keeps in `~/.ray/auth_token`
(`up` generates it first where the machine has none).

Everything `up` starts carries one marker in its environment (the cluster's temporary folder,
recorded in `.cluster/state.json`); `down` stops exactly those processes, by PID, and no other
Ray on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
STATE_FILE = REPO / ".cluster" / "state.json"
BIN = Path(sys.executable).parent
GCS_PORT = 6390
DASHBOARD_PORT = 8265
WORKERS = 2
CPUS_PER_NODE = 1
DEFAULT_CONFIG = REPO / "config" / "cluster-local.yaml"


# Every process of the cluster carries this variable (the raylets pass their environment to the
# workers they start), so `down` finds them all by it, whatever their process titles say.
MARKER = "LINKEDIN_POSTS_LOCAL_CLUSTER"
# Set (to anything) to keep the cluster's temporary folder, its Ray logs among them, after `down`.
KEEP_LOGS_ENV = "LOCAL_CLUSTER_KEEP_LOGS"


def ray_env(temp_dir: str | None = None) -> dict[str, str]:
    """The environment of every `ray start`, `serve` and driver of this cluster."""
    env = dict(os.environ)
    state = load_state()
    marker = temp_dir or (state["temp_dir"] if state else None)
    if marker:
        env[MARKER] = marker
    # The single-machine switch of deployments/local_ray.py forbids worker nodes.
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "deployments.edge.proxy_guard:middlewares"
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The nodes run from the project's environment: `python` in a job's entrypoint
    # (`ray job submit -- python ...`) is its interpreter, with Ray and the project.
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    # Replicas import graph and deployments from the checkout, as the driver does.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _run(*command: str, timeout: float = 300, check: bool = True) -> str:
    result = subprocess.run(
        command, env=ray_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def load_state() -> dict[str, Any] | None:
    return json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else None


def cluster_processes(temp_dir: str) -> list[psutil.Process]:
    """Every live process of the cluster (marked with MARKER), and their children; never this
    process or the ones that called it."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        try:
            if process.pid in mine or process.environ().get(MARKER) != temp_dir:
                continue
            found[process.pid] = process
            found.update({c.pid: c for c in process.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [p for p in found.values() if p.pid not in mine]


def up(config: Path, ready_timeout_s: float) -> dict[str, Any]:
    state = load_state()
    if state and cluster_processes(state["temp_dir"]):
        print(f"a cluster is already running (temp dir {state['temp_dir']}); `make cluster-down`")
        return state
    temp_dir = tempfile.mkdtemp(prefix="lpc-", dir="/tmp")  # short: Ray's socket paths
    address = f"127.0.0.1:{GCS_PORT}"
    STATE_FILE.parent.mkdir(exist_ok=True)
    state = {
        "temp_dir": temp_dir,
        "address": address,
        "dashboard": f"http://127.0.0.1:{DASHBOARD_PORT}",
        "http": "http://127.0.0.1:8000",
        "config": str(config),
    }
    STATE_FILE.write_text(json.dumps(state, indent=2))
    ray = str(BIN / "ray")
    # A fresh machine has no ~/.ray/auth_token, and `ray start` in token mode will not make one.
    # `_run` keeps what it prints (the token) out of our output.
    _run(ray, "get-auth-token", "--generate")
    print(f"starting the head node (GCS on {address}, temp dir {temp_dir})")
    _run(
        ray,
        "start",
        "--head",
        f"--port={GCS_PORT}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={CPUS_PER_NODE}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={DASHBOARD_PORT}",
        "--resources",
        json.dumps({"head": 1}),
        "--disable-usage-stats",
    )
    for worker in range(WORKERS):
        print(f"starting worker node {worker + 1}")
        _run(
            ray,
            "start",
            f"--address={address}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={CPUS_PER_NODE}",
            "--resources",
            json.dumps({f"worker-{worker + 1}": 1}),
            "--disable-usage-stats",
        )
    deploy(state, config, ready_timeout_s)
    return state


def deploy(state: dict[str, Any], config: Path, ready_timeout_s: float) -> None:
    print(f"serve deploy {config}")
    _run(str(BIN / "serve"), "deploy", str(config), "--address", state["dashboard"])
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{state['http']}/readyz", timeout=5).status_code == 200:
                print(f"ready: {state['http']}")
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise SystemExit(f"the app was not ready after {ready_timeout_s} s:\n" + serve_status(state))


def serve_status(state: dict[str, Any]) -> str:
    return _run(str(BIN / "serve"), "status", "--address", state["dashboard"], check=False)


VIEW_PREFIX = "cluster view: "


def cluster_view(state: dict[str, Any]) -> dict[str, Any]:
    """{"nodes": {name: {"node_id", "alive", "node_manager_port"}}, "replicas": {deployment:
    [node name of each running replica]}}; nodes are named by the resource only they advertise
    ("head", "worker-1", ...). Read by a driver of its own, so it works from any process."""
    code = f"""
import json, ray
from ray.util.state import list_actors
ray.init(address={state["address"]!r}, logging_level="ERROR", log_to_driver=False)
nodes, names = {{}}, {{}}
for node in ray.nodes():
    kind = [r for r in node["Resources"] if r == "head" or r.startswith("worker-")]
    name = kind[0] if kind else node["NodeID"][:8]
    if node["Alive"]:
        names[node["NodeID"]] = name
    if node["Alive"] or name not in nodes:
        nodes[name] = {{"node_id": node["NodeID"], "alive": node["Alive"],
                       "node_manager_port": node["NodeManagerPort"]}}
placed = {{}}
# The cluster's address, never Ray's guess: another Ray may run on this machine (a test's own).
alive = [("state", "=", "ALIVE")]
for actor in list_actors(address={state["address"]!r}, filters=alive, limit=1000):
    if actor.class_name.startswith("ServeReplica:"):
        deployment = actor.class_name.split(":")[-1]
        placed.setdefault(deployment, []).append(names.get(actor.node_id, actor.node_id[:8]))
print({VIEW_PREFIX!r} + json.dumps({{"nodes": nodes, "replicas": placed}}), flush=True)
"""
    output = subprocess.run(
        [sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True, timeout=120
    )
    if output.returncode != 0:
        raise SystemExit(f"could not read the cluster's nodes and replicas:\n{output.stderr}")
    return parse_cluster_view(output.stdout)


def parse_cluster_view(stdout: str) -> dict[str, Any]:
    """The view in the driver's output. Ray prints lines of its own there too, after it: at exit,
    once a node has died, a warning that its raylet "has lagging heartbeats"."""
    views = [line for line in stdout.splitlines() if line.startswith(VIEW_PREFIX)]
    if len(views) != 1:
        raise SystemExit(f"no cluster view in the driver's output:\n{stdout}")
    return json.loads(views[0].removeprefix(VIEW_PREFIX))


def replicas(state: dict[str, Any]) -> dict[str, list[str]]:
    """Per deployment, the node of each running replica ("head", "worker-1", ...)."""
    return cluster_view(state)["replicas"]


def raylet(state: dict[str, Any], node: str) -> psutil.Process:
    """The raylet process of one node of the cluster ("worker-1"): the one listening on that
    node's node manager port."""
    port = cluster_view(state)["nodes"][node]["node_manager_port"]
    ours = {p.pid: p for p in cluster_processes(state["temp_dir"])}
    for connection in psutil.net_connections(kind="tcp"):
        listening = connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        if listening and connection.pid in ours:
            return ours[connection.pid]
    raise LookupError(f"no raylet for {node} (node manager port {port})")


def status() -> int:
    state = load_state()
    if not state or not cluster_processes(state["temp_dir"]):
        print("no cluster is running (`make cluster` starts one)")
        return 1
    placed = replicas(state)
    print(f"{'deployment':<14} {'replicas':>8}  nodes")
    for deployment in sorted(placed):
        nodes = placed[deployment]
        counts: dict[str, int] = defaultdict(int)
        for node in nodes:
            counts[node] += 1
        where = ", ".join(f"{node} x{n}" if n > 1 else node for node, n in sorted(counts.items()))
        print(f"{deployment:<14} {len(nodes):>8}  {where}")
    return 0


def down() -> int:
    state = load_state()
    if not state:
        print("no cluster recorded in .cluster/state.json")
        return 0
    stopped = 0
    # Rounds, since a raylet that is being stopped may still start a worker.
    for _ in range(3):
        processes = cluster_processes(state["temp_dir"])
        if not processes:
            break
        stopped += len(processes)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=15)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=10)
    left = cluster_processes(state["temp_dir"])
    if left:
        raise SystemExit(f"processes left: {[p.pid for p in left]}")
    if os.environ.get(KEEP_LOGS_ENV):
        print(f"kept the cluster's logs in {state['temp_dir']} ({KEEP_LOGS_ENV} is set)")
    else:
        shutil.rmtree(state["temp_dir"], ignore_errors=True)
    STATE_FILE.unlink()
    print(f"stopped {stopped} processes")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the nodes and deploy the app")
    start.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    start.add_argument("--ready-timeout", type=float, default=600)
    sub.add_parser("status", help="replicas per deployment and their nodes")
    sub.add_parser("down", help="stop every process the cluster started")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.config.resolve(), args.ready_timeout)
        return status()
    return status() if args.command == "status" else down()


if __name__ == "__main__":
    sys.exit(main())
