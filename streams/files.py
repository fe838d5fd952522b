"""Serve a file over ASGI with full HTTP semantics: `serve_file`, after `django.views.static.serve`.

Made for ASGI: the body is an async generator that reads the file off the
event loop in a small thread pool, chunk by chunk, so nothing is buffered
(Django buffers sync iterators, FileResponse included: ticket #33735), the
first byte leaves at once, and a slow reader holds back the next read
(back-pressure). Conditional requests (ETag, Last-Modified) answer 304 or 412,
a single `Range` answers 206 or 416 and `If-Range` is honoured (RFC 9110).
The caller resolves the path itself (by a database id, never from a client's
path), and supplies the validators, type and download name.

It lives in `streams/` beside the SSE framing because it is delivery plumbing
that views call, not project wiring that settings name (that is in
`mission_control/`).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

from accounts.http import json_error

IO_THREADS = 8
# ASCII digits only: `\d` would take other scripts' digits ("٣") and int() would read them.
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE | re.ASCII)
# A position of more digits than any file size is "past the end" (int() refuses 4,300+).
_POSITION_DIGITS = 19
_PAST_ANY_END = 2**63
UNSATISFIABLE = object()
_io_pool: ThreadPoolExecutor | None = None


def io_pool() -> ThreadPoolExecutor:
    """Return the file-reading thread pool, created on first use."""
    # Own threads, so slow disks never starve sync_to_async's default executor.
    global _io_pool
    if _io_pool is None:
        _io_pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="file-io")
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
    pool = io_pool()
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


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _POSITION_DIGITS else _PAST_ANY_END


def parse_range(header: str, size: int):
    """Return (first, last) for a single byte range, UNSATISFIABLE, or None to ignore it.

    Multiple ranges and malformed values are ignored (RFC 9110 §14.2 allows it):
    the client then gets the whole representation with 200. Positions too long
    to be a size count as past the end: a first position answers 416, a last
    position or a suffix length means "to the end".
    """
    match = _RANGE.fullmatch(header.replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = _position(first)
    if last and _position(last) < start:
        return None
    stop = _position(last) if last else size - 1
    if start >= size:
        return UNSATISFIABLE
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


def _not_modified(headers: dict[str, str]) -> HttpResponse:
    response = HttpResponseNotModified()
    for name in ("ETag", "Last-Modified", "Cache-Control"):
        response[name] = headers[name]
    return response


def _precondition_failed(headers: dict[str, str]) -> HttpResponse:
    response = json_error(412, "precondition_failed", "The file does not match the condition.")
    response["ETag"] = headers["ETag"]
    return response


def _precondition_response(
    request: HttpRequest, headers: dict[str, str], etag: str, modified: int
) -> HttpResponse | None:
    """Return the 412 or 304 the request's conditions call for, or None to serve it."""
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
    return None


# nginx's internal locations for X-Accel-Redirect (deploy/nginx.conf): "full/" sends the
# whole file (nginx's own range handling off), "range/" the client's one Range.
ACCEL_PREFIX = "/_accel/"


# A Range header nginx reads as `parse_range` does: one range, no spaces, positions of at
# most 18 digits (nginx refuses a position past its off_t with 416, where the worker
# reads it as "to the end"). Any other Range is served by the worker (see _accel_allowed).
_NGINX_READS_ALIKE = re.compile(r"bytes=(?:[0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})")


def _accel_allowed(request: HttpRequest, status: int) -> bool:
    """Return whether nginx may send this GET without changing its answer.

    nginx checks If-Match and If-Unmodified-Since again against its own
    validators (the file's mtime and size, not the SHA-256 ETag) and would
    answer 412 where the worker served; those rare requests stay with the worker.
    A 206 is sent by nginx from the client's own Range header, so only when
    nginx reads that header as the worker did (`bytes = 0-1` with spaces, or a
    20-digit position, would come out 200 or 416 through nginx).
    """
    return (
        request.method == "GET"
        and "If-Match" not in request.headers
        and "If-Unmodified-Since" not in request.headers
        and (status != 206 or _NGINX_READS_ALIKE.fullmatch(request.headers["Range"]) is not None)
    )


def _accel_response(
    accel_path: str, *, status: int, content_type: str, headers: dict[str, str]
) -> HttpResponse:
    """Return an empty answer that hands the file to nginx (X-Accel-Redirect).

    The worker already decided everything: 304/412/416 never get here, and the
    location chosen makes nginx send the whole file (200) or the same single
    range the worker validated (206). nginx takes ETag and Last-Modified from
    this answer (add_header), so If-Range compares against the same validators.
    """
    headers = {k: v for k, v in headers.items() if k not in ("Content-Length", "Content-Range")}
    location = "range/" if status == 206 else "full/"
    headers["X-Accel-Redirect"] = f"{ACCEL_PREFIX}{location}{quote(accel_path)}"
    return HttpResponse(content_type=content_type, headers=headers)


async def serve_file(
    request: HttpRequest,
    path: str,
    *,
    content_type: str,
    filename: str,
    etag: str,
    last_modified: int,
    chunk_size: int,
    cache_control: str = "private, no-cache",
    accel_path: str | None = None,
) -> HttpResponse:
    """Answer GET/HEAD for the file at `path`: 200, 206, 304, 412 or 416, streamed.

    `etag` is the quoted strong validator and `last_modified` a Unix time in
    seconds. Like `django.views.static.serve`, a missing file raises Http404.
    With `accel_path` (the file's path under nginx's internal media location),
    a 200 or 206 GET is handed to nginx by X-Accel-Redirect once everything is
    decided here; the answer the client sees is the same.
    """
    try:
        stat = await asyncio.wrap_future(io_pool().submit(os.stat, path))
    except FileNotFoundError:
        raise Http404(f"{path} is missing") from None
    return file_response(
        request,
        path,
        size=stat.st_size,
        content_type=content_type,
        filename=filename,
        etag=etag,
        last_modified=last_modified,
        chunk_size=chunk_size,
        cache_control=cache_control,
        accel_path=accel_path,
    )


def file_response(
    request: HttpRequest,
    path: str,
    *,
    size: int,
    content_type: str,
    filename: str,
    etag: str,
    last_modified: int,
    chunk_size: int,
    cache_control: str = "private, no-cache",
    accel_path: str | None = None,
) -> HttpResponse:
    """`serve_file`'s answer for a file of `size` bytes the caller has just stat'ed.

    For sync views: it does no I/O (the body, if any, is read later on the event
    loop by `file_chunks`), so a sync view that found and stat'ed the file in the
    request's thread answers without leaving it (each hop between the thread and
    the event loop delayed a download's first byte).
    """
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(last_modified),
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    conditional = _precondition_response(request, headers, etag, last_modified)
    if conditional is not None:
        return conditional

    start, length, status = 0, size, 200
    range_header = request.headers.get("Range")
    if (
        request.method == "GET"
        and range_header is not None
        and _if_range_allows(request.headers.get("If-Range"), etag, last_modified)
    ):
        wanted = parse_range(range_header, size)
        if wanted is UNSATISFIABLE:
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
    if accel_path is not None and _accel_allowed(request, status):
        return _accel_response(
            accel_path, status=status, content_type=content_type, headers=headers
        )
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type=content_type, headers=headers)
    return StreamingHttpResponse(
        file_chunks(path, start, length, chunk_size),
        status=status,
        content_type=content_type,
        headers=headers,
    )
