"""streams.files.serve_file on a plain file, outside any image view."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.test import RequestFactory

from streams.tests.served_file import DATA, ETAG, data_file, serve


async def body_of(response) -> bytes:
    if response.streaming:
        return b"".join([chunk async for chunk in response.streaming_content])
    return response.content


@pytest.fixture
def path(tmp_path):
    return data_file(tmp_path)


async def test_range_is_streamed_in_chunks_as_206(path):
    request = RequestFactory().get("/", headers={"Range": "bytes=10-309"})
    response = await serve(request, path)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-309/{len(DATA)}"
    chunks = [chunk async for chunk in response.streaming_content]
    assert [len(chunk) for chunk in chunks] == [100, 100, 100]
    assert b"".join(chunks) == DATA[10:310]


async def test_head_and_304_carry_no_body(path):
    head = await serve(RequestFactory().head("/"), path)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(DATA))
    assert await body_of(head) == b""
    cached = await serve(RequestFactory().get("/", headers={"If-None-Match": ETAG}), path)
    assert cached.status_code == 304
    assert await body_of(cached) == b""


async def test_missing_file_raises_http404_like_static_serve(tmp_path):
    with pytest.raises(Http404):
        await serve(RequestFactory().get("/"), str(tmp_path / "gone.bin"))
