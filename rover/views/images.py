"""Image feed: the seed's /stream/rover-image, the image list, downloads and thumbnails.

Downloads take after `django.views.static.serve`, made for ASGI: the body is an
async generator that reads the file off the event loop in a small thread pool,
chunk by chunk, so nothing is buffered and the first byte leaves at once.
Conditional requests (ETag from the SHA-256, Last-Modified) answer 304, a
single `Range` answers 206 and `If-Range` is honoured (RFC 9110). Files are
found by the image id only; no client-supplied path reaches the file system.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from django.views.decorators.http import require_http_methods

from accounts.decorators import api_login_required, api_permission_required
from accounts.http import json_error
from rover.models import RoverImage
from rover.selectors.images import MAX_PAGE_SIZE, image_get, image_latest, image_page, rover_get
from rover.services.images import ImageRejected, image_json, image_store, metadata_parse

DEFAULT_PAGE_SIZE = 20
IO_THREADS = 8
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$", re.IGNORECASE)
_UNSATISFIABLE = object()
_io_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    # Own threads, so slow disks never starve sync_to_async's default executor.
    global _io_pool
    if _io_pool is None:
        _io_pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="image-io")
    return _io_pool


def _close_fd_when_done(future: Future, fd: int) -> None:
    """Close `fd` once `future` (a read on it) has finished, now if it already has."""
    future.add_done_callback(lambda _f: os.close(fd))


def _close_opened_fd(future: Future) -> None:
    if not future.cancelled() and future.exception() is None:
        os.close(future.result())


async def file_chunks(path: str, start: int, length: int, chunk_size: int) -> AsyncIterator[bytes]:
    """Yield `length` bytes of the file from `start`, each chunk read in a pool thread.

    One read at a time: bench/images.py measured a read-ahead of one chunk as no
    faster (the socket, not the disk, is the bottleneck) and it doubles the memory
    held per download. On client disconnect Django cancels the response task; the
    file descriptor is then closed in `finally`, once a read still running in the
    pool has finished with it.
    """
    pool = _pool()
    opening = pool.submit(os.open, path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = await asyncio.wrap_future(opening)
    except BaseException:
        opening.add_done_callback(_close_opened_fd)
        raise
    reading: Future | None = None
    try:
        position, end = start, start + length
        while position < end:
            reading = pool.submit(os.pread, fd, min(chunk_size, end - position), position)
            chunk = await asyncio.wrap_future(reading)
            reading = None
            if not chunk:
                raise OSError(f"{path} is shorter than expected")
            position += len(chunk)
            yield chunk
    finally:
        if reading is not None:
            _close_fd_when_done(reading, fd)
        else:
            os.close(fd)


def parse_range(header: str, size: int):
    """Return (first, last) for a single byte range, _UNSATISFIABLE, or None to ignore it.

    Multiple ranges and malformed values are ignored (RFC 9110 §14.2 allows it):
    the client then gets the whole representation with 200.
    """
    match = _RANGE.match(header.replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    stop = int(last) if last else size - 1
    if start >= size:
        return _UNSATISFIABLE
    return start, min(stop, size - 1)


def _etag_list(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(header: str, etag: str) -> bool:
    tags = _etag_list(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def _strong_match(header: str, etag: str) -> bool:
    tags = _etag_list(header)
    return "*" in tags or etag in tags


def _if_range_allows(header: str | None, etag: str, modified: int) -> bool:
    if header is None:
        return True
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == etag
    return parse_http_date_safe(header) == modified


async def serve_image_file(request: HttpRequest, image: RoverImage, *, thumbnail: bool = False):
    """Answer GET/HEAD for an image or its thumbnail with full HTTP semantics."""
    field = image.thumbnail if thumbnail else image.file
    if not field.name:
        return json_error(404, "not_found", "This image has no thumbnail.")
    path = field.path
    try:
        stat = await asyncio.wrap_future(_pool().submit(os.stat, path))
    except FileNotFoundError:
        return json_error(404, "file_missing", "The image file is missing from storage.")
    size = stat.st_size
    etag = f'"{image.sha256}-thumb"' if thumbnail else f'"{image.sha256}"'
    modified = int(image.received_at.timestamp())
    base, extension = os.path.splitext(image.original_name or "")
    stem = base or f"{image.rover.slug}-{image.pk}"
    if thumbnail:
        filename, content_type = f"{stem}-thumbnail.jpg", "image/jpeg"
    else:
        filename = f"{stem}{extension or _extension_of(field.name)}"
        content_type = image.content_type
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(modified),
        "Cache-Control": "private, no-cache",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }

    if_match = request.headers.get("If-Match")
    if if_match is not None and not _strong_match(if_match, etag):
        return _precondition_failed(headers)
    if if_match is None:
        since = parse_http_date_safe(request.headers.get("If-Unmodified-Since", ""))
        if since is not None and modified > since:
            return _precondition_failed(headers)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if _weak_match(if_none_match, etag):
            return _not_modified(headers)
    else:
        since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
        if since is not None and modified <= since:
            return _not_modified(headers)

    start, length, status = 0, size, 200
    range_header = request.headers.get("Range")
    if (
        request.method == "GET"
        and range_header is not None
        and _if_range_allows(request.headers.get("If-Range"), etag, modified)
    ):
        wanted = parse_range(range_header, size)
        if wanted is _UNSATISFIABLE:
            response = json_error(
                416, "range_not_satisfiable", f"The file has {size} bytes.", size=size
            )
            response["Content-Range"] = f"bytes */{size}"
            for name, value in headers.items():
                response[name] = value
            return response
        if wanted is not None:
            first, last = wanted
            start, length, status = first, last - first + 1, 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"

    headers["Content-Disposition"] = content_disposition_header(False, filename)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        response = HttpResponse(status=status, content_type=content_type, headers=headers)
        return response
    chunk_size = settings.IMAGE_STREAM_CHUNK_BYTES
    return StreamingHttpResponse(
        file_chunks(path, start, length, chunk_size),
        status=status,
        content_type=content_type,
        headers=headers,
    )


def _extension_of(name: str) -> str:
    return os.path.splitext(name)[1]


def _not_modified(headers: dict[str, str]) -> HttpResponse:
    response = HttpResponseNotModified()
    for name in ("ETag", "Last-Modified", "Cache-Control"):
        response[name] = headers[name]
    return response


def _precondition_failed(headers: dict[str, str]) -> HttpResponse:
    response = json_error(412, "precondition_failed", "The image does not match the condition.")
    response["ETag"] = headers["ETag"]
    return response


@require_http_methods(["GET", "HEAD"])
@api_login_required(public_setting="PUBLIC_FEEDS")
async def rover_image_stream(request: HttpRequest):
    """Stream the newest image of the default rover (the seed's URL)."""
    slug = settings.DEFAULT_ROVER_SLUG
    image = await sync_to_async(image_latest)(rover_slug=slug)
    if image is None:
        return json_error(404, "no_image", f"Rover {slug!r} has not sent an image yet.")
    return await serve_image_file(request, image)


@require_http_methods(["GET", "HEAD"])
@api_login_required
async def image_download(request: HttpRequest, image_id: int):
    """Stream one stored image by id."""
    image = await sync_to_async(image_get)(image_id=image_id)
    if image is None:
        return json_error(404, "not_found", f"No image {image_id}.")
    return await serve_image_file(request, image)


@require_http_methods(["GET", "HEAD"])
@api_login_required
async def image_thumbnail(request: HttpRequest, image_id: int):
    """Serve an image's JPEG thumbnail."""
    image = await sync_to_async(image_get)(image_id=image_id)
    if image is None:
        return json_error(404, "not_found", f"No image {image_id}.")
    return await serve_image_file(request, image, thumbnail=True)


def _positive_int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        return None
    return int(value)


@require_http_methods(["GET", "HEAD", "POST"])
async def rover_images(request: HttpRequest, slug: str):
    """GET: a page of the rover's images, newest first. POST: upload one image (multipart)."""
    if request.method == "POST":
        return await _rover_image_upload(request, slug)
    return await _rover_image_list(request, slug)


@api_login_required
async def _rover_image_list(request: HttpRequest, slug: str):
    page = _positive_int(request.GET.get("page"), 1)
    limit = _positive_int(request.GET.get("limit"), DEFAULT_PAGE_SIZE)
    if page is None or limit is None:
        return json_error(400, "invalid_page", "'page' and 'limit' must be positive integers.")
    limit = min(limit, MAX_PAGE_SIZE)
    rover = await sync_to_async(rover_get)(slug=slug)
    if rover is None:
        return json_error(404, "unknown_rover", f"No rover {slug!r}.")
    images, count = await sync_to_async(image_page)(rover=rover, page=page, limit=limit)

    def link(number: int) -> str:
        return f"{request.path}?{urlencode({'page': number, 'limit': limit})}"

    return JsonResponse(
        {
            "count": count,
            "page": page,
            "limit": limit,
            "next": link(page + 1) if page * limit < count else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [image_json(image) for image in images],
        }
    )


@api_permission_required("rover.add_roverimage")
async def _rover_image_upload(request: HttpRequest, slug: str):
    rover = await sync_to_async(rover_get)(slug=slug)
    if rover is None:
        return json_error(404, "unknown_rover", f"No rover {slug!r}.")
    user = await request.auser()
    return await sync_to_async(_store_multipart)(request, rover, user)


def _store_multipart(request: HttpRequest, rover, user) -> HttpResponse:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > settings.IMAGE_MAX_BYTES + 64 * 1024:
        return json_error(
            413, "too_large", f"The image is larger than {settings.IMAGE_MAX_BYTES} bytes."
        )
    upload = request.FILES.get("file")
    if upload is None:
        return json_error(400, "file_missing", "Send the image as the multipart field 'file'.")
    try:
        camera, captured_at = metadata_parse(
            camera=request.POST.get("camera"), captured_at=request.POST.get("captured_at")
        )
        with upload.open("rb") as fileobj:
            image = image_store(
                rover=rover,
                fileobj=fileobj,
                camera=camera,
                captured_at=captured_at,
                user=user,
                original_name=os.path.basename(upload.name or ""),
            )
    except ImageRejected as exc:
        return json_error(exc.status, exc.code, exc.detail)
    finally:
        upload.close()
    response = JsonResponse(image_json(image), status=201)
    response["Location"] = image_json(image)["url"]
    return response
