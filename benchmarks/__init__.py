"""Benchmarks for linkedin-posts: `python -m benchmarks [scenario ...] [--quick] [--out PATH]`.

Every scenario starts what it measures (Ray, Serve, the graph), bounds its own time and request
count, and reports medians; `benchmarks/RESULTS.md` is written by a full run on a quiet machine.
"""
