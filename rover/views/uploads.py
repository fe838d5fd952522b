"""Resumable image uplink speaking the tus 1.0 core protocol (with creation, termination).

    OPTIONS /api/rovers/<slug>/uploads/          -> 204 Tus-Version, Tus-Extension, Tus-Max-Size
    POST    /api/rovers/<slug>/uploads/          Upload-Length, Upload-Metadata -> 201 Location
                                                 (429 past UPLOAD_MAX_OPEN_PER_USER)
    HEAD    /api/rovers/<slug>/uploads/<uuid>    -> 200 Upload-Offset, Upload-Length (410 expired)
    PATCH   /api/rovers/<slug>/uploads/<uuid>    Upload-Offset + body -> 204 Upload-Offset
    DELETE  /api/rovers/<slug>/uploads/<uuid>    -> 204 (termination)

Under ASGI Django has the whole request body spooled to a temporary file (on
disk past FILE_UPLOAD_MAX_MEMORY_SIZE) before the view runs, so a PATCH is
copied from that file to the upload's own file in 1 MiB reads in a thread,
never held in memory. When the last byte arrives the upload is validated and
stored through `image_store`; a bad image discards it and answers 4xx JSON.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from accounts.decorators import api_permission_required
from accounts.http import json_error
from mission_control.parsing import BadParameter, bad_parameter_response, header_int
from rover.selectors.images import upload_get
from rover.selectors.rovers import rover_get
from rover.services.images import ImageRejected
from rover.services.uploads import (
    UploadBusy,
    UploadConflict,
    UploadLimitReached,
    upload_append,
    upload_create,
    upload_require_live,
    upload_terminate,
)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
METADATA_KEYS = {"filename", "camera", "captured_at", "filetype"}


def _tus(view: Callable) -> Callable:
    """Answer with Tus-Resumable on every response; refuse requests of another version."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
            response = json_error(
                412, "tus_version", f"Send 'Tus-Resumable: {TUS_VERSION}' (tus 1.0 core)."
            )
            response["Tus-Version"] = TUS_VERSION
        else:
            response = await view(request, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        response.setdefault("Cache-Control", "no-store")
        return response

    return wrapper


def _options() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = TUS_EXTENSIONS
    response["Tus-Max-Size"] = str(settings.IMAGE_MAX_BYTES)
    return response


def _not_allowed(allowed: str) -> HttpResponse:
    response = json_error(405, "method_not_allowed", f"Use one of: {allowed}.")
    response["Allow"] = allowed
    return response


def parse_metadata(header: str) -> dict[str, str]:
    """Decode tus Upload-Metadata: comma-separated `key base64(value)` pairs."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = pair.partition(" ")
        if not key or key in metadata:
            raise ValueError(f"bad or repeated key {key!r}")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"value of {key!r} is not base64 UTF-8") from exc
        if key not in METADATA_KEYS:
            continue
        if "\x00" in value:
            # PostgreSQL stores no NUL in text or jsonb: the insert would fail (a 500).
            raise ValueError(f"value of {key!r} contains a NUL character")
        metadata[key] = value[:255]
    return metadata


@_tus
async def upload_collection(request: HttpRequest, slug: str) -> HttpResponse:
    """OPTIONS: what this server speaks. POST: create an upload."""
    if request.method == "OPTIONS":
        return _options()
    if request.method != "POST":
        return _not_allowed("OPTIONS, POST")
    return await _create(request, slug)


@api_permission_required("rover.add_roverimage")
async def _create(request: HttpRequest, slug: str) -> HttpResponse:
    rover = await sync_to_async(rover_get)(slug=slug)
    if rover is None:
        return json_error(404, "unknown_rover", f"No rover {slug!r}.")
    if "Upload-Defer-Length" in request.headers:
        return json_error(400, "defer_length", "Upload-Defer-Length is not supported.")
    try:
        length = header_int(request.headers, "Upload-Length", code="upload_length")
    except BadParameter as exc:
        return bad_parameter_response(exc)
    if length is None:
        return json_error(
            400,
            "upload_length",
            "Send Upload-Length as a positive integer (the image's size in bytes).",
            parameter="Upload-Length",
        )
    try:
        metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    except ValueError as exc:
        return json_error(400, "upload_metadata", f"Upload-Metadata is malformed: {exc}.")
    user = await request.auser()
    try:
        upload = await sync_to_async(upload_create)(
            rover=rover, user=user, length=length, metadata=metadata
        )
    except ImageRejected as exc:
        return json_error(exc.status, exc.code, exc.detail, **exc.fields)
    except UploadLimitReached as exc:
        # 429: not 413 (no single upload is too big), nor 409/423, which tus clients retry.
        return json_error(
            429,
            "too_many_uploads",
            f"You have {exc.limit} unfinished uploads, the most allowed: finish or DELETE one, "
            "or let it expire.",
            limit=exc.limit,
        )
    response = HttpResponse(status=201)
    response["Location"] = request.build_absolute_uri(
        reverse("rover-upload", args=[slug, upload.pk])
    )
    response["Upload-Offset"] = "0"
    return response


@_tus
async def upload_resource(request: HttpRequest, slug: str, upload_id: str) -> HttpResponse:
    """HEAD: the upload's offset. PATCH: append bytes. DELETE: give the upload up."""
    if request.method == "OPTIONS":
        return _options()
    if request.method not in ("HEAD", "PATCH", "DELETE"):
        return _not_allowed("OPTIONS, HEAD, PATCH, DELETE")
    return await _resource(request, slug, upload_id)


@api_permission_required("rover.add_roverimage")
async def _resource(request: HttpRequest, slug: str, upload_id: str) -> HttpResponse:
    rover = await sync_to_async(rover_get)(slug=slug)
    user = await request.auser()
    upload = None
    if rover is not None:
        upload = await sync_to_async(upload_get)(upload_id=upload_id, rover=rover, user=user)
    if upload is None:
        # Someone else's upload is as unknown as a made-up id.
        return json_error(404, "unknown_upload", "No such upload of yours.")
    if request.method == "HEAD":
        try:
            await sync_to_async(upload_require_live)(upload=upload)
        except ImageRejected as exc:
            return json_error(exc.status, exc.code, exc.detail, **exc.fields)
        response = HttpResponse(status=200)
        response["Upload-Offset"] = str(upload.offset)
        response["Upload-Length"] = str(upload.length)
        return _with_image(response, upload)
    if request.method == "DELETE":
        try:
            await sync_to_async(upload_terminate)(upload=upload)
        except UploadBusy:
            return _busy()
        return HttpResponse(status=204)
    return await _patch(request, upload)


async def _patch(request: HttpRequest, upload) -> HttpResponse:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_CONTENT_TYPE:
        return json_error(415, "content_type", f"PATCH bodies must be {OFFSET_CONTENT_TYPE}.")
    try:
        offset = header_int(request.headers, "Upload-Offset", code="upload_offset")
    except BadParameter as exc:
        return bad_parameter_response(exc)
    if offset is None:
        return json_error(
            400,
            "upload_offset",
            "Send Upload-Offset as a non-negative integer.",
            parameter="Upload-Offset",
        )
    try:
        upload = await sync_to_async(upload_append)(upload=upload, offset=offset, stream=request)
    except UploadConflict as exc:
        response = json_error(
            409, "offset_mismatch", f"The upload is at offset {exc.offset}.", offset=exc.offset
        )
        response["Upload-Offset"] = str(exc.offset)
        return response
    except UploadBusy:
        return _busy()
    except ImageRejected as exc:
        return json_error(exc.status, exc.code, exc.detail, **exc.fields)
    response = HttpResponse(status=204)
    response["Upload-Offset"] = str(upload.offset)
    return _with_image(response, upload)


def _busy() -> HttpResponse:
    return json_error(423, "upload_locked", "Another request is writing to this upload.")


def _with_image(response: HttpResponse, upload) -> HttpResponse:
    if upload.image_id is not None:
        response["Rover-Image"] = reverse("image-download", args=[upload.image_id])
    return response
