"""Benchmark-only URLs: the product's, plus the seed's download as a baseline.

The baseline reproduces the seed exactly (4 KiB `aiofiles` reads yielded into a
StreamingHttpResponse) and never appears in the product's URLs. Both bench URLs sit
under /api/ because a token authenticates only API paths (accounts/paths.py).
"""

from __future__ import annotations

import aiofiles
from django.http import StreamingHttpResponse
from django.urls import include, path

from rover.models import RoverImage


async def seed_baseline(request, image_id: int):
    """Stream an image the seed's way: no Range, no conditionals, 4 KiB chunks."""
    image = await RoverImage.objects.aget(pk=image_id)

    async def image_chunk_generator():
        async with aiofiles.open(image.file.path, mode="rb") as f:
            while chunk := await f.read(4096):
                yield chunk

    return StreamingHttpResponse(image_chunk_generator(), content_type=image.content_type)


urlpatterns = [
    path("api/bench/seed-image/<int:image_id>", seed_baseline),
    path("", include("mission_control.urls")),
]


async def read_ahead(request, image_id: int):
    """The product's reads plus a read-ahead of one chunk (the design measured against)."""
    import asyncio
    import os

    from django.conf import settings

    from streams.files import io_pool

    image = await RoverImage.objects.aget(pk=image_id)
    size = settings.IMAGE_STREAM_CHUNK_BYTES

    async def chunks():
        pool = io_pool()
        fd = os.open(image.file.path, os.O_RDONLY)
        end = image.size
        reading = pool.submit(os.pread, fd, min(size, end), 0)
        try:
            position = 0
            while reading is not None:
                chunk = await asyncio.wrap_future(reading)
                position += len(chunk)
                reading = None
                if position < end:
                    reading = pool.submit(os.pread, fd, min(size, end - position), position)
                yield chunk
        finally:
            if reading is not None:
                reading.add_done_callback(lambda _f: os.close(fd))
            else:
                os.close(fd)

    return StreamingHttpResponse(chunks(), content_type=image.content_type)


urlpatterns.insert(0, path("api/bench/read-ahead-image/<int:image_id>", read_ahead))
