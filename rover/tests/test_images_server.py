"""Images over a real ASGI server process: curl resume, tus with an interruption, aborts."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from rover.models import ImageUpload, RoverImage
from rover.tests.media import media_files
from streams.files import IO_THREADS

pytestmark = pytest.mark.usefixtures("own_media_root")


def noise_png(width: int, height: int, seed: int = 7) -> bytes:
    """Return a real PNG of random pixels: it does not compress, so it is ~3 bytes/pixel."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


@pytest.fixture
def token(user_factory, token_for):
    return token_for(user_factory(perms=("rover.add_roverimage",)))


def raw_get_and_abort(port: int, path: str, token: str, read_bytes: int) -> int:
    """Send a GET, read some of the body, then reset the connection; return bytes read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        sock.sendall(request.encode())
        received = 0
        while received < read_bytes:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
        # RST instead of FIN: the harshest disconnect a client can make.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return received
    finally:
        sock.close()


def server_resources(proc: psutil.Process, image_path: str) -> tuple[int, int, int]:
    """Return (open fds, threads, handles on the image file) of the server process."""
    handles = sum(1 for f in proc.open_files() if f.path == image_path)
    return proc.num_fds(), proc.num_threads(), handles


def settle(proc: psutil.Process, image_path: str, baseline: tuple[int, int, int]):
    """Wait up to 5 s for the server's resources to come back to the baseline."""
    deadline = time.monotonic() + 5
    current = server_resources(proc, image_path)
    while time.monotonic() < deadline:
        current = server_resources(proc, image_path)
        fds, threads, handles = current
        if fds <= baseline[0] and threads <= baseline[1] + IO_THREADS and handles == 0:
            break
        time.sleep(0.1)
    return current


def check_aborted_downloads_leave_nothing(server, image: RoverImage, token: str, count: int):
    proc = psutil.Process(server.proc.pid)
    path = f"/api/images/{image.pk}/download"
    # Warm up: imports, the DB connection and the file-reading pool's threads.
    for _ in range(10):
        raw_get_and_abort(server.port, path, token, 256 * 1024)
    time.sleep(0.3)
    baseline = server_resources(proc, image.file.path)
    assert baseline[2] == 0
    for _ in range(count):
        assert raw_get_and_abort(server.port, path, token, 256 * 1024) >= 256 * 1024
    fds, threads, handles = settle(proc, image.file.path, baseline)
    assert handles == 0, "a file handle on the image is still open"
    assert fds <= baseline[0], f"file descriptors grew from {baseline[0]} to {fds}"
    # The file-reading pool may still add idle threads up to its bound; a leak would
    # add one per download.
    assert threads <= baseline[1] + IO_THREADS, f"threads grew from {baseline[1]} to {threads}"
    # The server is still healthy and serves the whole file.
    response = httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == image.sha256


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
# What this measures (file handles, threads, memory, bytes) is the server's, not the
# database's: once is enough, on PostgreSQL as in production.
@pytest.mark.one_pass("services", why="file handles and threads of a server process")
def test_aborted_downloads_release_file_and_threads(server_process, store_image, token, kind):
    image = store_image(data=noise_png(1200, 1000), original_name="big.png")
    assert image.size > 3_000_000  # far more than socket buffers hold
    server = server_process(server=kind)
    check_aborted_downloads_leave_nothing(server, image, token, count=100)


@pytest.mark.slow
# What this measures (file handles, threads, memory, bytes) is the server's, not the
# database's: once is enough, on PostgreSQL as in production.
@pytest.mark.one_pass("services", why="file handles and threads of a server process")
def test_500_aborted_downloads_leave_no_handle_or_thread(server_process, store_image, token):
    image = store_image(data=noise_png(1200, 1000), original_name="big.png")
    server = server_process(server="uvicorn")
    check_aborted_downloads_leave_nothing(server, image, token, count=500)


def test_curl_resumes_a_broken_download_byte_identical(
    server_process, store_image, token, tmp_path
):
    image = store_image(data=noise_png(800, 600), original_name="resume.png")
    server = server_process(server="uvicorn")
    url = f"{server.url}/api/images/{image.pk}/download"
    target = tmp_path / "received.png"
    # A download broken off after 300000 bytes (curl stops at --max-filesize only up
    # front, so the partial file is made the way a dropped link leaves it).
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status_code == 200
        with open(target, "wb") as out:
            for chunk in response.iter_bytes(65536):
                out.write(chunk)
                if out.tell() >= 300_000:
                    break
    partial = target.stat().st_size
    assert 300_000 <= partial < image.size
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            "-C",
            "-",
            "-H",
            f"Authorization: Bearer {token}",
            "-o",
            str(target),
            "-w",
            "%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "206"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == image.sha256


def test_curl_fetches_the_seed_url_with_a_token(server_process, store_image, token, tmp_path):
    image = store_image()
    server = server_process(server="uvicorn")
    target = tmp_path / "received_image.jpg"
    subprocess.run(
        [
            "curl",
            "-sSf",
            "-H",
            f"Authorization: Bearer {token}",
            f"{server.url}/stream/rover-image",
            "-o",
            str(target),
        ],
        check=True,
        timeout=30,
    )
    assert hashlib.sha256(target.read_bytes()).hexdigest() == image.sha256


def send_broken_patch(port: int, path: str, token: str, offset: int, body: bytes) -> None:
    """Start a PATCH announcing len(body)*2 bytes, send half of them, then drop the link."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(body) * 2}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def test_tuspy_upload_cut_off_and_resumed_is_byte_identical(server_process, rover, token, settings):
    from tusclient import client as tus

    data = noise_png(1024, 1024)
    assert len(data) > 3_000_000
    chunk = 1024 * 1024
    server = server_process(server="uvicorn")
    endpoint = f"{server.url}/api/rovers/curiosity/uploads/"
    headers = {"Authorization": f"Bearer {token}"}
    metadata = {
        "filename": "mosaic.png",
        "camera": "mastcam",
        "captured_at": "2024-05-06T07:08:09Z",
    }

    first = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, metadata=metadata
    )
    first.upload_chunk()
    assert first.offset == chunk
    path = "/" + first.url.split("/", 3)[3]
    # The link drops in the middle of the second chunk, and the server restarts.
    send_broken_patch(server.port, path, token, chunk, data[chunk : chunk + chunk // 2])
    server.restart()

    resumed = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=chunk, url=first.url
    )
    assert resumed.offset == chunk  # from HEAD: the broken half-chunk was not kept
    resumed.upload()

    image = RoverImage.objects.get()
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert Path(image.file.path).read_bytes() == data
    assert (image.camera, image.original_name, image.content_type) == (
        "mastcam",
        "mosaic.png",
        "image/png",
    )
    assert ImageUpload.objects.get().image_id == image.pk
    assert not [name for name in media_files(settings.MEDIA_ROOT) if name.startswith("uploads/")]
