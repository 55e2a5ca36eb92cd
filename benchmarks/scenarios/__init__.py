"""The scenarios, one module each; every one takes a `Context`, bounds its own time and request
count, and returns a `ScenarioReport`. `benchmarks/registry.py` names them and fixes their order.

baseline  the naive way in one process, no Ray: title, content, hashtags one after another
graph     the graph over HTTP, cache off, at rising concurrency; posts/s against the baseline
batch     POST /v1/posts/batch with N requests against N concurrent POST /v1/posts
cache     cache-hit path against a constant Serve endpoint (the ceiling), plus a Zipf workload
handle    the same loads through the Python handle from this driver against HTTP
quality   post contract and topical relevance of 24 fixed posts from the real model
tuning    batching, sampling, threads and dtype variants of the graph at 32 clients
router    Ray Serve's router retry backoff at 128 clients
queues    the model deployments' queue limits at 128 clients

common.py holds what several scenarios share (the settings they deploy, load helpers). The
harness reaches the scenarios only through the registry, and no scenario imports the registry
or the runner, so no import loop can form. This file imports nothing for the same reason.
"""
