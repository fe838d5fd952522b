"""serve_file with `accel_path`: what it hands to nginx and what it still answers itself.

Through real nginx the client-visible answers are checked in
tests/production/test_serve.py; here, the worker's side of the hand-over.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from streams.tests import served_file
from streams.tests.served_file import DATA, ETAG

ACCEL_PATH = "rover-images/2026/a b.png"


@pytest.fixture
def path(tmp_path):
    return served_file.data_file(tmp_path)


def serve(request, path):
    return served_file.serve(
        request, path, content_type="image/png", filename="a b.png", accel_path=ACCEL_PATH
    )


async def test_whole_file_goes_to_nginx_full_location_with_the_validators(path):
    response = await serve(RequestFactory().get("/"), path)
    assert response.status_code == 200
    assert not response.streaming and response.content == b""
    assert response["X-Accel-Redirect"] == "/_accel/full/rover-images/2026/a%20b.png"
    assert response["ETag"] == ETAG
    assert response["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert response["Content-Type"] == "image/png"
    assert response["Accept-Ranges"] == "bytes"
    assert "Content-Length" not in response or response["Content-Length"] == "0"


async def test_a_valid_range_goes_to_nginx_range_location(path):
    request = RequestFactory().get("/", headers={"Range": "bytes=10-19", "If-Range": ETAG})
    response = await serve(request, path)
    assert response["X-Accel-Redirect"].startswith("/_accel/range/")
    assert "Content-Range" not in response


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-1,5-6"},  # multi-range: ignored, the whole file
        {"Range": "bytes=9-3"},  # malformed: ignored
        {"Range": "bytes=10-19", "If-Range": '"stale"'},  # changed since: the whole file
    ],
)
async def test_ranges_the_worker_ignores_go_to_the_full_location(path, headers):
    response = await serve(RequestFactory().get("/", headers=headers), path)
    assert response["X-Accel-Redirect"].startswith("/_accel/full/")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Range": f"bytes={len(DATA)}-"}, 416),
        ({"If-None-Match": ETAG}, 304),
        ({"If-Match": '"other"'}, 412),
    ],
)
async def test_304_412_and_416_are_answered_by_the_worker(path, headers, status):
    response = await serve(RequestFactory().get("/", headers=headers), path)
    assert response.status_code == status
    assert "X-Accel-Redirect" not in response


@pytest.mark.parametrize("header", ["If-Match", "If-Unmodified-Since"])
async def test_if_match_and_if_unmodified_since_stay_with_the_worker(path, header):
    """nginx would check them against its own validators: the worker streams these."""
    value = ETAG if header == "If-Match" else "Tue, 14 Nov 2023 22:13:20 GMT"
    response = await serve(RequestFactory().get("/", headers={header: value}), path)
    assert response.status_code == 200
    assert response.streaming
    assert "X-Accel-Redirect" not in response


async def test_head_is_answered_by_the_worker(path):
    response = await serve(RequestFactory().head("/"), path)
    assert "X-Accel-Redirect" not in response
    assert response["Content-Length"] == str(len(DATA))
