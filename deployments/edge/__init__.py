"""The HTTP edge: API-key auth and rate limits (limits), the JSON error envelope (errors), the
proxy's own answers (proxy_guard) and readiness."""
