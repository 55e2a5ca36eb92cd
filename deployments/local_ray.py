"""The environment of a Ray instance that serves on one machine: `make run`, `linkedin-posts
serve`, the tests and the benchmarks. It must be in the environment before `ray` is imported
(Ray decides the node's address at import) and so before Ray starts: Ray's processes (the proxy
actor among them) read it when they start.

- `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`: Ray takes 127.0.0.1 as the node's address, so every
  port it opens (the metrics agent's Prometheus export among them, which has no auth) listens
  on loopback only instead of 0.0.0.0. A node of a real cluster must not set it.
- `deployments.edge.proxy_guard` installed in Serve's HTTP proxy.

The Makefile's `run` target spells out the same variables (tests/test_local_ray.py checks).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from deployments.edge.proxy_guard import PROXY_ENV

LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **PROXY_ENV}


def use_local_ray_env() -> None:
    """Put LOCAL_RAY_ENV into this process's environment; before `ray` is imported."""
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and constants.ENABLE_RAY_CLUSTER:
        raise RuntimeError("use_local_ray_env() must run before ray is imported")
    os.environ.update(LOCAL_RAY_ENV)


def keep_replica_server_on_loopback() -> None:
    """Called in each replica's `__init__`. After `__init__`, Serve starts the replica's
    inter-deployment gRPC server on `[::]:0`, every interface, with no auth: a way around the
    Ingress. On a node whose address is loopback (LOCAL_RAY_ENV) it is bound to 127.0.0.1
    instead; on a cluster node nothing changes (firewall it, see the README)."""
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() != "127.0.0.1":
        return
    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback_only", False):
        return

    def bind_on_loopback(server: Any, address: str) -> int:
        return bind(server, address.replace("[::]", "127.0.0.1", 1))

    bind_on_loopback.loopback_only = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_on_loopback
