"""Benchmarks for linkedin-posts: `python -m benchmarks [scenario ...] [--quick] [--out PATH]`.

Every scenario starts what it measures (Ray, Serve, the graph), bounds its own time and request
count, and reports medians; each run's RESULTS.md goes to a folder of its own under
benchmarks/results/ (see benchmarks/paths.py).
"""

from deployments.local_ray import use_local_ray_env

# Every run starts its own Ray on one machine, as `make run` does: loopback only, the proxy guard
# installed. Here, before any benchmark module imports ray.
use_local_ray_env()
