"""A 200 MB image over tus with tuspy, cut off and resumed, against a real uvicorn process."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib

import pytest

from rover.models import RoverImage
from rover.tests.media import media_files
from rover.tests.test_images_server import send_broken_patch


def noise_png_16bit(side: int) -> bytes:
    """Return a real 16-bit RGBA PNG of random noise, stored uncompressed (~8 bytes/pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    squash = zlib.compressobj(level=0)
    rows = b"".join(squash.compress(b"\x00" + os.urandom(side * 8)) for _ in range(side))
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)),
            chunk(b"IDAT", rows + squash.flush()),
            chunk(b"IEND", b""),
        ]
    )


@pytest.mark.slow
@pytest.mark.usefixtures("own_media_root")
# What this measures (file handles, threads, memory, bytes) is the server's, not the
# database's: once is enough, on PostgreSQL as in production.
@pytest.mark.one_pass("services", why="bytes through a server process")
def test_tuspy_uploads_200_mb_cut_off_and_resumed_byte_identical(
    server_process, rover, user_factory, token_for, settings
):
    from tusclient import client as tus

    token = token_for(user_factory(perms=("rover.add_roverimage",)))
    data = noise_png_16bit(5000)
    assert len(data) > 200_000_000
    chunk = 64 * 1024 * 1024
    server = server_process(server="uvicorn")
    endpoint = f"{server.url}/api/rovers/curiosity/uploads/"
    headers = {"Authorization": f"Bearer {token}"}
    first = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, metadata={"filename": "big.png"}
    )
    first.upload_chunk()
    path = "/" + first.url.split("/", 3)[3]
    send_broken_patch(server.port, path, token, chunk, data[chunk : chunk + 8 * 1024 * 1024])

    resumed = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, url=first.url
    )
    assert resumed.offset == chunk
    resumed.upload()

    image = RoverImage.objects.get()
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.width, image.height, image.content_type) == (5000, 5000, "image/png")
    assert not [name for name in media_files(settings.MEDIA_ROOT) if name.startswith("uploads/")]
