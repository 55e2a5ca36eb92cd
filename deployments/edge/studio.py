"""The studio page (GET /): static files from deployments/edge/studio/, no build step.

Served under a Content-Security-Policy that allows only this origin's own script, style and API
calls: no inline script or style, no other site, no framing. The page calls the API with the
key the user types (kept in the tab's sessionStorage), so the files themselves are open paths.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from deployments.edge.errors import ApiError

STUDIO_DIR = Path(__file__).with_name("studio")
# The files a browser may ask for, and what they are.
STUDIO_FILES = {
    "index.html": "text/html; charset=utf-8",
    "studio.js": "text/javascript; charset=utf-8",
    "studio.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def studio_file(name: str) -> FileResponse:
    if name not in STUDIO_FILES:
        raise ApiError(404, f"not found: /studio/{name}")
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return FileResponse(STUDIO_DIR / name, media_type=STUDIO_FILES[name], headers=headers)
