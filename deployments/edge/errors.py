"""One error envelope, `{"error": {"code", "message", "details"}}`, and one exception mapper."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("ray.serve")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "overloaded",
    504: "timeout",
}


class ApiError(Exception):
    """Raised anywhere in the request path to answer with a given status and envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.reason = reason  # for the request metrics (edge.request_metrics.REASONS)


def error_body(status: int, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope: `{"error": {"code", "message", "details"}}` (a stream's `error` event)."""
    return {
        "error": {
            "code": _STATUS_CODES.get(status, "error"),
            "message": message,
            "details": details,
        }
    }


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, details), status_code=status, headers=headers)


def downstream_error(exc: BaseException, request_id: str, retry_after_s: int) -> ApiError:
    """What a failed call down the graph answers: 504 at the request's timeout, 503 with
    Retry-After when a queue was full or the generation failed. What failed stays in the log;
    the answer names no internals."""
    from ray.serve.exceptions import BackPressureError  # Ray: the edge's tests run without it

    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, "the request took too long; try again")
    if isinstance(exc, BackPressureError):
        return ApiError(
            503, "the service is busy; retry shortly", headers=retry, reason="model_queue_full"
        )
    logger.warning("generation failed for request %s: %r", request_id, exc)
    return ApiError(
        503, "generation failed; retry shortly", headers=retry, reason="generation_failed"
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    details = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        field = _field_path(tuple(err.get("loc", ())))
        if err.get("type") == "json_invalid":
            return error_response(
                400, "request body is not valid JSON", [{"field": "body", "message": message}]
            )
        details.append({"field": field, "message": message})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(422, f"invalid request: {summary}", details)


def invalid_request(exc: ValidationError) -> ApiError:
    """A request given through a handle that does not validate: the 422 HTTP would answer."""
    details = [
        {"field": _field_path(tuple(err.get("loc", ()))), "message": err.get("msg", "invalid")}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return ApiError(422, f"invalid request: {summary}", details=details)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.reason:
            request.state.reason = exc.reason
        return error_response(exc.status, exc.message, exc.details, exc.headers)

    @app.exception_handler(asyncio.TimeoutError)
    async def _on_timeout(_: Request, exc: asyncio.TimeoutError) -> JSONResponse:
        return error_response(504, "the request took too long; try again")

    @app.exception_handler(Exception)
    async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")
