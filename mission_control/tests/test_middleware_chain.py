"""The middleware chain under ASGI: Django's hooks run in one thread visit, not one hop each.

Each hop between the event loop and a request's thread wakes one of them; on an
idle worker that cost a download's first byte most of its time
(bench/scaleout.py --only downloads), so the hops are counted here.
"""

from __future__ import annotations

from rover.tests.clients import asgi_request

# request_started's receivers with the whole middleware chain, the URL resolver,
# the view hooks and a sync view (one visit: the chain is built in sync mode),
# and the response's close() (request_finished). Each MiddlewareMixin hook in an
# async chain would add one more: 15 per request before the CSP middleware
# became sync-only, 4 while Django's async chain returned to the event loop
# below it (CsrfViewMiddleware.process_view was a hop of its own), 3 while
# Django sent request_started in a visit of its own.
THREAD_HOPS = 2


async def test_a_request_visits_a_thread_a_few_times_not_once_per_middleware_hook(thread_hops):
    # /healthz touches no database, so every hop counted is the handler's own.
    status, headers, _body = await asgi_request("/healthz")
    assert status == 200
    # The sync middlewares still ran: SecurityMiddleware's and XFrameOptions' headers.
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert thread_hops[0] == THREAD_HOPS
