"""Which HTTP paths are the API: the only ones an API token may authenticate.

Everything else (the dashboard, the admin, the login and password forms) is a
session page protected by CSRF, which a token must never bypass. The access
matrix test (`accounts/tests/test_access_matrix.py`) classifies every route of
the URLconf, so a new route that lands on the wrong side fails it.
"""

from __future__ import annotations

import re

# /api/...: JSON, uploads and downloads; /stream/...: the seed's feeds;
# /rovers/<slug>/telemetry/stream: the SSE feed; /metrics: the Prometheus scrape.
_API_PATH = re.compile(r"^/(?:api/|stream/|rovers/[^/]+/telemetry/stream$|metrics$)")


def token_path(path: str) -> bool:
    """Return whether `path` (a request's path_info) belongs to the token-authenticated API."""
    return _API_PATH.match(path) is not None
