"""`make run` starts Ray with the same environment as the tests, the CLI and the benchmarks."""

from __future__ import annotations

import re
from pathlib import Path

from deployments.local_ray import LOCAL_RAY_ENV

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def test_make_run_sets_the_local_ray_environment() -> None:
    text = MAKEFILE.read_text().replace("\\\n", " ")
    [assignment] = re.findall(r"^LOCAL_RAY_ENV\s*:=\s*(.+)$", text, flags=re.MULTILINE)
    assert dict(item.split("=", 1) for item in assignment.split()) == LOCAL_RAY_ENV
    [run] = re.findall(r"^run:.*\n\t(.+)$", text, flags=re.MULTILINE)
    assert run.startswith("$(LOCAL_RAY_ENV) ")


def test_the_proxy_callback_is_importable_and_returns_the_guard() -> None:
    # What Serve's proxy does with the variable when it starts.
    from ray.serve._private.utils import call_function_from_import_path

    from deployments.edge.proxy_guard import ProxyGuard

    path = LOCAL_RAY_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"]
    [middleware] = call_function_from_import_path(path)
    assert middleware.cls is ProxyGuard
