"""`linkedin-posts`: generate a post, or serve the graph.

linkedin-posts generate "Why code review makes teams faster" --tone casual
linkedin-posts generate "..." --url http://127.0.0.1:8000     # ask a running service
linkedin-posts generate "..." --url ... --stream   # the body shown as it is written (stderr)
linkedin-posts serve                                          # the graph on 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from deployments.schemas import PostLength, PostRequest, Tone


def _post_request(args: argparse.Namespace) -> PostRequest:
    return PostRequest(
        topic=args.topic,
        tone=args.tone,
        audience=args.audience,
        length=args.length,
        num_hashtags=args.hashtags,
        call_to_action=args.cta,
        seed=args.seed,
        use_cache=not args.no_cache,
    )


def _generate_remote(url: str, request: PostRequest, timeout: float) -> dict[str, Any]:
    import httpx

    response = httpx.post(
        url.rstrip("/") + "/v1/posts", json=request.model_dump(mode="json"), timeout=timeout
    )
    body = response.json()
    if response.status_code != 200:
        raise SystemExit(f"error {response.status_code}: {json.dumps(body)}")
    return body


def _show_piece(part: str, text: str) -> None:
    """While streaming, the body as it is written goes to stderr; the finished post to stdout."""
    if part == "content":
        sys.stderr.write(text)
        sys.stderr.flush()


def _stream_remote(url: str, request: PostRequest, timeout: float) -> dict[str, Any]:
    import httpx

    with httpx.stream(
        "POST",
        url.rstrip("/") + "/v1/posts/stream",
        json=request.model_dump(mode="json"),
        timeout=timeout,
    ) as response:
        if response.status_code != 200:
            response.read()
            raise SystemExit(f"error {response.status_code}: {response.text}")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event is not None:
                data = json.loads(line.removeprefix("data: "))
                if event == "post":
                    sys.stderr.write("\n\n")
                    return data
                if event == "error":
                    raise SystemExit(f"error: {json.dumps(data)}")
                if event != "meta":
                    _show_piece(event, data["text"])
    raise SystemExit("error: the stream ended without a post")


def _generate_local(request: PostRequest, *, stream: bool = False) -> dict[str, Any]:
    """In this process, without Ray: the same engine, writer and compiler the graph uses."""
    import secrets

    from deployments.engine.model_loader import post_model_id
    from deployments.post.compiler import PostCompiler
    from deployments.post.local_writer import close_engines, part_engines, write_posts
    from deployments.settings import AppSettings

    settings = AppSettings.load()
    started = time.perf_counter()
    engines = part_engines(settings)
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    try:
        written = write_posts(
            engines,
            PostCompiler(post_model_id(settings)),
            [request],
            [seed],
            settings.generation,
            on_piece=_show_piece if stream else None,
        )
    except RuntimeError as exc:
        raise SystemExit(f"generation failed: {exc}") from exc
    finally:
        close_engines(engines)
    post = written.posts[0]
    post.metadata.timings_ms = {"total": round((time.perf_counter() - started) * 1000, 1)}
    return post.model_dump(mode="json")


def _cmd_generate(args: argparse.Namespace) -> int:
    request = _post_request(args)
    if args.url:
        generate = _stream_remote if args.stream else _generate_remote
        post = generate(args.url, request, args.timeout)
    else:
        post = _generate_local(request, stream=args.stream)
        if args.stream:
            sys.stderr.write("\n\n")
    print(json.dumps(post, indent=2, ensure_ascii=False) if args.json else post["text"])
    return 0


def read_requests(path: str) -> list[PostRequest]:
    """A JSON list of PostRequests, or JSON Lines with one per line."""
    text = Path(path).read_text()
    stripped = text.lstrip()
    items = (
        json.loads(text)
        if stripped.startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    return [PostRequest.model_validate(item) for item in items]


def _cmd_warm(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    requests = read_requests(args.file)
    totals = {"generated": 0, "already_cached": 0, "failed": 0}
    with (
        httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as client,
        tqdm(total=len(requests), unit="post", desc="warming") as progress,
    ):
        for start in range(0, len(requests), args.chunk):
            chunk = requests[start : start + args.chunk]
            body = {"requests": [r.model_dump(mode="json") for r in chunk]}
            response = client.post("/v1/cache/warm", json=body)
            if response.status_code == 200:
                result = response.json()
                totals["generated"] += result["generated"]
                totals["already_cached"] += result["already_cached"]
            else:
                totals["failed"] += len(chunk)
                tqdm.write(f"chunk at {start} failed: {response.status_code} {response.text}")
            progress.update(len(chunk))
    print(json.dumps(totals))
    return 0 if totals["failed"] == 0 else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from deployments.local_ray import use_local_ray_env

    use_local_ray_env()  # before ray is imported

    import ray
    from ray import serve

    from deployments.settings import AppSettings

    # The graph is the application at the repository root: loaded by name, as Serve loads an
    # import path, not a library module this package depends on.
    build_app = importlib.import_module("graph").build_app

    settings = AppSettings.load({"config_file": args.config} if args.config else None)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    serve.start(http_options={"host": settings.http.host, "port": settings.http.port})
    serve.run(build_app(settings), name=settings.app_name, route_prefix=settings.route_prefix)
    print(f"serving on http://{settings.http.host}:{settings.http.port} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="linkedin-posts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write one post and print it")
    gen.add_argument("topic")
    gen.add_argument("--tone", choices=[t.value for t in Tone], default="professional")
    gen.add_argument("--audience")
    gen.add_argument("--length", choices=[n.value for n in PostLength], default="medium")
    gen.add_argument("--hashtags", type=int, default=3, help="how many hashtags (0-10)")
    gen.add_argument("--cta", help="call to action the body ends with")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--no-cache", action="store_true")
    gen.add_argument("--url", help="a running service; without it the model runs here")
    gen.add_argument("--timeout", type=float, default=300)
    gen.add_argument("--json", action="store_true", help="print the whole Post as JSON")
    gen.add_argument(
        "--stream", action="store_true", help="show the body on stderr as it is written"
    )
    gen.set_defaults(func=_cmd_generate)

    warm = commands.add_parser("warm", help="generate and cache posts for a list of requests")
    warm.add_argument("file", help="JSON list or JSON Lines of PostRequests")
    warm.add_argument("--url", default="http://127.0.0.1:8000")
    warm.add_argument("--chunk", type=int, default=16, help="requests per call (1-256)")
    warm.add_argument("--timeout", type=float, default=600)
    warm.set_defaults(func=_cmd_warm)

    srv = commands.add_parser("serve", help="serve the graph with Ray Serve")
    srv.add_argument("--config", help="settings YAML (see README, Configuration)")
    srv.add_argument("--num-cpus", type=float, default=None)
    srv.set_defaults(func=_cmd_serve)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # pydantic validation of the request
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
