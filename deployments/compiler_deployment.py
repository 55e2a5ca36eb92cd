"""Compiler: a thin Serve wrapper over PostCompiler."""

from __future__ import annotations

from deployments.local_ray import keep_replica_server_on_loopback
from deployments.post.compiler import PostCompiler
from deployments.schemas import GenerationResult, Post, PostPart, PostRequest

_HEALTH_REQUEST = PostRequest(topic="health check", num_hashtags=1)


class Compiler:
    def __init__(self, model_id: str) -> None:
        keep_replica_server_on_loopback()
        self.compiler = PostCompiler(model_id)

    def check_health(self) -> None:
        """Serve marks the replica unhealthy if compiling a fixed input fails."""
        self.compiler.compile(_HEALTH_REQUEST, "Title", "Body.", "#Tag")

    def compile(
        self, request: PostRequest, candidates: dict[PostPart, list[GenerationResult]]
    ) -> Post:
        """The post from each part's candidates (one or more hook lines and bodies)."""
        return self.compiler.compile_candidates(request, candidates)
