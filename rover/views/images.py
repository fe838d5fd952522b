"""Image feed: the seed's /stream/rover-image, the image list, downloads and thumbnails.

Downloads go through `streams.files.file_response` (streamed off the event loop,
Range, If-Range, ETag and Last-Modified conditionals). These views only find
the image by id (no client-supplied path reaches the file system) and name its
validators: the ETag is the SHA-256, Last-Modified the time it was received.
"""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.decorators import (
    api_login_required,
    api_permission_required,
    unauthenticated_response,
)
from accounts.http import api_methods, json_error, unparsable_body_error
from accounts.middleware import checks_token_itself, pending_token, token_checked
from mission_control.field_files import stored_file
from mission_control.parsing import BadParameter, bad_parameter_response, parse_int, query_int
from rover.events import image_json
from rover.models import RoverImage
from rover.selectors.images import (
    MAX_PAGE_SIZE,
    image_get,
    image_get_for_token,
    image_latest,
    image_page,
)
from rover.selectors.rovers import rover_get
from rover.services.images import ImageRejected, camera_parse, image_store_once, metadata_parse
from streams.files import file_response

DEFAULT_PAGE_SIZE = 20
# Pages of 100 images: a hundred million images before this bound matters.
PAGE_MAX = 1_000_000
BAD_PAGE = "invalid_page"


def serve_image_file(
    request: HttpRequest, image: RoverImage, *, thumbnail: bool = False
) -> HttpResponse:
    """Answer GET/HEAD for an image or its thumbnail with full HTTP semantics.

    Sync, as are the views that call it: found, stat'ed and answered in the
    request's thread in one visit (mission_control/asgi_handler.py runs sync
    views there directly); every hop to the event loop and back had delayed a
    download's first byte. The body, when nginx does not send it, is read on
    the event loop (`streams.files.file_chunks`).
    """
    # Not `image.file`: its FieldFile and the image would be a reference cycle.
    name, path = stored_file(image, "thumbnail" if thumbnail else "file")
    if not name:
        return json_error(404, "not_found", "This image has no thumbnail.")
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return json_error(404, "file_missing", "The image file is missing from storage.")
    base, extension = os.path.splitext(image.original_name or "")
    stem = base or f"{image.rover.slug}-{image.pk}"
    if thumbnail:
        filename, content_type = f"{stem}-thumbnail.jpg", "image/jpeg"
    else:
        content_type = image.content_type
        # The rover's name keeps its extension only when it names the file's real type:
        # a JPEG uploaded as `evil.html`, saved from the browser, would open as a page.
        if mimetypes.guess_type(f"x{extension}")[0] != content_type:
            extension = os.path.splitext(name)[1]
        filename = f"{stem}{extension}"
    return file_response(
        request,
        path,
        size=size,
        content_type=content_type,
        filename=filename,
        etag=f'"{image.sha256}-thumb"' if thumbnail else f'"{image.sha256}"',
        last_modified=int(image.received_at.timestamp()),
        chunk_size=settings.IMAGE_STREAM_CHUNK_BYTES,
        # Behind nginx (make serve), nginx sends the bytes once access is checked.
        accel_path=name if settings.IMAGE_ACCEL_REDIRECT else None,
    )


@api_methods("GET", "HEAD")
@api_login_required(public_setting="PUBLIC_FEEDS")
def rover_image_stream(request: HttpRequest):
    """Stream the newest image of the default rover (the seed's URL)."""
    slug = settings.DEFAULT_ROVER_SLUG
    image = image_latest(rover_slug=slug)
    if image is None:
        return json_error(404, "no_image", f"Rover {slug!r} has not sent an image yet.")
    return serve_image_file(request, image)


def _image_for_user(request: HttpRequest, image_id: int) -> HttpResponse | RoverImage:
    """Return the image if the request's user may download it, else the answer refusing it.

    As `api_login_required` then `image_get` would; a bearer token left to this
    view by the middleware is checked in the image's own query (one round trip).
    """
    raw = pending_token(request)
    if raw is not None:
        user, image = image_get_for_token(image_id=image_id, raw_token=raw)
        refused = token_checked(request, user)
        if refused is not None:
            return refused
    elif not request.user.is_authenticated:
        return unauthenticated_response()
    else:
        image = image_get(image_id=image_id)
    if image is None:
        return json_error(404, "not_found", f"No image {image_id}.")
    return image


@api_methods("GET", "HEAD")
@checks_token_itself
def image_download(request: HttpRequest, image_id: int):
    """Stream one stored image by id."""
    found = _image_for_user(request, image_id)
    return found if isinstance(found, HttpResponse) else serve_image_file(request, found)


@api_methods("GET", "HEAD")
@checks_token_itself
def image_thumbnail(request: HttpRequest, image_id: int):
    """Serve an image's JPEG thumbnail."""
    found = _image_for_user(request, image_id)
    if isinstance(found, HttpResponse):
        return found
    return serve_image_file(request, found, thumbnail=True)


@api_methods("GET", "HEAD", "POST")
async def rover_images(request: HttpRequest, slug: str):
    """GET: a page of the rover's images, newest first. POST: upload one image (multipart)."""
    if request.method == "POST":
        return await _rover_image_upload(request, slug)
    return await _rover_image_list(request, slug)


@api_login_required
async def _rover_image_list(request: HttpRequest, slug: str):
    try:
        page = query_int(request.GET, "page", default=1, minimum=1, maximum=PAGE_MAX, code=BAD_PAGE)
        # A bigger limit is served as MAX_PAGE_SIZE, as before; only its digits are bounded.
        limit = query_int(
            request.GET,
            "limit",
            default=DEFAULT_PAGE_SIZE,
            minimum=1,
            maximum=PAGE_MAX,
            code=BAD_PAGE,
        )
    except BadParameter as exc:
        return bad_parameter_response(exc)
    limit = min(limit, MAX_PAGE_SIZE)
    # ?camera= filters by camera, named in any case (NAVCAM, as NASA writes it).
    camera = None
    if request.GET.get("camera"):
        try:
            camera = camera_parse(request.GET["camera"])
        except ImageRejected as exc:
            return json_error(exc.status, exc.code, exc.detail, **exc.fields)
    rover = await sync_to_async(rover_get)(slug=slug)
    if rover is None:
        return json_error(404, "unknown_rover", f"No rover {slug!r}.")
    images, count = await sync_to_async(image_page)(
        rover=rover, page=page, limit=limit, camera=camera
    )
    filters = {"camera": camera} if camera else {}

    def link(number: int) -> str:
        return f"{request.path}?{urlencode({**filters, 'page': number, 'limit': limit})}"

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
    try:
        declared = parse_int(
            request.META.get("CONTENT_LENGTH"), name="Content-Length", default=0, header=True
        )
    except BadParameter as exc:
        return bad_parameter_response(exc)
    if declared > settings.IMAGE_MAX_BYTES + 64 * 1024:
        return json_error(
            413, "too_large", f"The image is larger than {settings.IMAGE_MAX_BYTES} bytes."
        )
    try:
        upload = request.FILES.get("file")
    except Exception as exc:
        refused = unparsable_body_error(exc)
        if refused is None:
            raise
        # Django has closed and deleted whatever part it had spooled: nothing to clean.
        return refused
    if upload is None:
        return json_error(400, "file_missing", "Send the image as the multipart field 'file'.")
    try:
        camera, captured_at = metadata_parse(
            camera=request.POST.get("camera"), captured_at=request.POST.get("captured_at")
        )
        with upload.open("rb") as fileobj:
            image, created = image_store_once(
                rover=rover,
                fileobj=fileobj,
                camera=camera,
                captured_at=captured_at,
                user=user,
                original_name=os.path.basename(upload.name or ""),
            )
    except ImageRejected as exc:
        return json_error(exc.status, exc.code, exc.detail, **exc.fields)
    finally:
        upload.close()
    # 200 with the image already stored when the rover sent the same bytes again.
    response = JsonResponse(image_json(image), status=201 if created else 200)
    response["Location"] = image_json(image)["url"]
    return response
