"""The middleware chain under ASGI: Django's hooks run in one thread visit, not one hop each."""

from __future__ import annotations

import pytest
from asgiref.sync import SyncToAsync

from rover.tests.clients import asgi_request

# request_started's receivers, the chain above the CSP middleware (one visit),
# CsrfViewMiddleware.process_view (Django adapts view hooks on their own), and
# the response's close() (request_finished). Each MiddlewareMixin hook in an
# async chain would add one more: 15 per request before the CSP middleware
# became sync-only.
THREAD_HOPS = 4


@pytest.fixture
def thread_hops(monkeypatch) -> list[int]:
    """Count the `sync_to_async` calls made while the test runs."""
    calls = [0]
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        calls[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


async def test_a_request_visits_a_thread_a_few_times_not_once_per_middleware_hook(thread_hops):
    # /healthz touches no database, so every hop counted is the handler's own.
    status, headers, _body = await asgi_request("/healthz")
    assert status == 200
    # The sync middlewares still ran: SecurityMiddleware's and XFrameOptions' headers.
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert thread_hops[0] == THREAD_HOPS
