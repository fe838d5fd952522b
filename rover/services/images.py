"""Store rover images: validate with Pillow, hash, thumbnail, announce.

Every image enters through `image_store`, whether it came from the multipart
uplink, a completed tus upload (`rover/services/uploads.py`), the admin or
`seed_demo`. The bytes are first copied (or moved) into a server-named file
under MEDIA_ROOT while their SHA-256 and size are taken; Pillow then checks that
they really are an image and reports the format (hence the MIME type), the size
and a thumbnail. The row and the files are written together: on any failure
every file written is removed and no row exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from mission_control.parsing import BadParameter, client_repr, parse_timestamp
from streams.hub import publish_on_commit

from ..events import image_event, rover_stream
from ..models import Camera, Rover, RoverImage
from .thumbnails import ThumbnailBusy, TooManyPixels, image_probe, thumbnail_jpeg

logger = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 1024 * 1024
THUMBNAIL_PX = 320
# Pillow format -> (MIME type, file extension). Anything else is refused.
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
    "TIFF": ("image/tiff", "tif"),
    "BMP": ("image/bmp", "bmp"),
}


class ImageRejected(Exception):
    """The upload is not an acceptable image; `code` and `detail` go to the client."""

    def __init__(
        self, code: str, detail: str, *, status: int = 400, parameter: str | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        # The client field at fault, when one is (`captured_at`).
        self.fields = {"parameter": parameter} if parameter else {}


@dataclass(frozen=True)
class _Inspected:
    mime: str
    extension: str
    width: int
    height: int


def uploads_dir() -> Path:
    """Return MEDIA_ROOT/uploads, where unfinished uploads live (created on demand)."""
    path = Path(settings.MEDIA_ROOT) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _copy_hashing(source: IO[bytes], target: Path, *, limit: int) -> tuple[int, str]:
    """Copy a stream to `target`; return (size, sha256). Stop once `limit` is passed."""
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as out:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise too_large_error(limit)
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def too_large_error(limit: int) -> ImageRejected:
    """Return the refusal of an image (or upload) over `limit` bytes (413)."""
    return ImageRejected("too_large", f"The image is larger than {limit} bytes.", status=413)


def _too_many_pixels(exc: Exception) -> ImageRejected:
    if isinstance(exc, TooManyPixels):
        return ImageRejected("too_many_pixels", str(exc), status=413)
    # Pillow's own refusal, far above our bound: say ours, not Pillow's laxer limit.
    limit = settings.IMAGE_MAX_PIXELS
    detail = f"The image has more pixels than the {limit} accepted (IMAGE_MAX_PIXELS)."
    return ImageRejected("too_many_pixels", detail, status=413)


def _inspect(path: Path) -> _Inspected:
    """Check from the header that the file is an image of an accepted format and size.

    Pixels are bounded (IMAGE_MAX_PIXELS) before anything is decoded.
    """
    try:
        probe = image_probe(path)
    except (TooManyPixels, Image.DecompressionBombError) as exc:
        raise _too_many_pixels(exc) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(
            "not_an_image", f"The data is not a readable image ({exc.__class__.__name__})."
        ) from exc
    if probe.format not in ACCEPTED_FORMATS:
        accepted = ", ".join(sorted(ACCEPTED_FORMATS))
        raise ImageRejected(
            "unsupported_format",
            f"Image format {probe.format} is not accepted (accepted: {accepted}).",
        )
    mime, extension = ACCEPTED_FORMATS[probe.format]
    return _Inspected(mime=mime, extension=extension, width=probe.width, height=probe.height)


def _thumbnail_bytes(path: Path) -> bytes:
    """Return a JPEG thumbnail at most THUMBNAIL_PX on its longer side.

    Decoding the pixels is also the last check: verify() does not decode JPEG data,
    so a truncated or corrupt file is only caught here.
    """
    try:
        return thumbnail_jpeg(path, size=THUMBNAIL_PX)
    except (TooManyPixels, Image.DecompressionBombError) as exc:
        raise _too_many_pixels(exc) from exc
    except ThumbnailBusy as exc:
        raise ImageRejected("busy", str(exc), status=503) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("not_an_image", f"The image data is corrupt ({exc}).") from exc


def _storage_name(prefix: str, rover: Rover, extension: str, when: datetime) -> str:
    # Server-chosen names only: nothing the client sent reaches the file system.
    return f"{prefix}/{when:%Y/%m/%d}/{rover.slug}-{uuid.uuid4().hex}.{extension}"


def remove_quietly(*paths: Path | None) -> None:
    """Delete the files that exist among `paths`; a missing one is no error."""
    for path in paths:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def image_store(
    *,
    rover: Rover,
    fileobj: IO[bytes] | None = None,
    path: str | os.PathLike | None = None,
    camera: str = Camera.NAVCAM,
    captured_at: datetime | None = None,
    user: Any = None,
    original_name: str = "",
) -> RoverImage:
    """Validate and store an image; announce it on `rover.<slug>` after commit.

    Give either `fileobj` (copied) or `path` (a finished upload under MEDIA_ROOT,
    which is moved into place, and is back where it was after a failure). Raise
    ImageRejected for anything that is not an acceptable image.
    """
    image, _created = _image_store(
        rover=rover,
        fileobj=fileobj,
        path=path,
        camera=camera,
        captured_at=captured_at,
        user=user,
        original_name=original_name,
        reuse_existing=False,
    )
    return image


def image_store_once(
    *,
    rover: Rover,
    fileobj: IO[bytes] | None = None,
    path: str | os.PathLike | None = None,
    camera: str = Camera.NAVCAM,
    captured_at: datetime | None = None,
    user: Any = None,
    original_name: str = "",
) -> tuple[RoverImage, bool]:
    """Store an image the rover sent, unless that rover already has the same bytes.

    The uplink is idempotent: a rover that sends an image again (a retry after a
    lost answer) gets the image already stored, not a second row, even when both
    copies arrive at once: the database keeps one uplinked row per rover and bytes
    (`roverimage_uplinked_once`), and the sender whose insert it refuses gets the
    other's image, its own files removed. Return (image, created). A `path` given is
    left in place when nothing was stored.
    """
    return _image_store(
        rover=rover,
        fileobj=fileobj,
        path=path,
        camera=camera,
        captured_at=captured_at,
        user=user,
        original_name=original_name,
        reuse_existing=True,
    )


def _image_store(
    *,
    rover: Rover,
    fileobj: IO[bytes] | None,
    path: str | os.PathLike | None,
    camera: str,
    captured_at: datetime | None,
    user: Any,
    original_name: str,
    reuse_existing: bool,
) -> tuple[RoverImage, bool]:
    if (fileobj is None) == (path is None):
        raise ValueError("Give exactly one of fileobj or path.")
    camera = camera_parse(camera)
    limit = settings.IMAGE_MAX_BYTES
    source: Path | None = None
    staged: Path | None = None
    final: Path | None = None
    thumb: Path | None = None
    try:
        if fileobj is not None:
            staged = uploads_dir() / f"incoming-{uuid.uuid4().hex}"
            size, sha256 = _copy_hashing(fileobj, staged, limit=limit)
            source = staged
        else:
            source = Path(path)
            size, sha256 = _hash_file(source)
            if size > limit:
                raise too_large_error(limit)
        if size == 0:
            raise ImageRejected("empty", "The upload is empty.")
        if reuse_existing:
            existing = _stored_before(rover, sha256)
            if existing is not None:
                remove_quietly(staged)
                logger.info("image of %s already stored as %s", rover.slug, existing.pk)
                return existing, False
        inspected = _inspect(source)
        thumbnail = _thumbnail_bytes(source)

        now = timezone.now()
        name = _storage_name("rover-images", rover, inspected.extension, now)
        thumb_name = _storage_name("rover-thumbnails", rover, "jpg", now)
        final = Path(default_storage.path(name))
        thumb = Path(default_storage.path(thumb_name))
        final.parent.mkdir(parents=True, exist_ok=True)
        thumb.parent.mkdir(parents=True, exist_ok=True)
        with transaction.atomic():
            os.replace(source, final)
            staged = None
            thumb.write_bytes(thumbnail)
            _files_undo_on_rollback(
                final=final, thumb=thumb, given_back_to=None if path is None else source
            )
            image = RoverImage.objects.create(
                rover=rover,
                camera=camera,
                captured_at=captured_at or now,
                file=name,
                original_name=(original_name or "")[:255],
                size=size,
                sha256=sha256,
                content_type=inspected.mime,
                width=inspected.width,
                height=inspected.height,
                thumbnail=thumb_name,
                uplinked=reuse_existing,
            )
            image_announce(image=image)
    except IntegrityError:
        _files_give_back(path=path, source=source, final=final, thumb=thumb, staged=staged)
        # Only roverimage_uplinked_once can refuse this insert: the same bytes were
        # stored by a concurrent uplink after the look-up above. Answer as a resend is.
        existing = _stored_before(rover, sha256) if reuse_existing else None
        if existing is None:
            raise
        logger.info("image of %s stored meanwhile as %s", rover.slug, existing.pk)
        return existing, False
    except BaseException:
        _files_give_back(path=path, source=source, final=final, thumb=thumb, staged=staged)
        raise
    logger.info("stored image %s of %s (%d bytes) for %s", image.pk, rover.slug, size, user)
    return image, True


def _stored_before(rover: Rover, sha256: str) -> RoverImage | None:
    """Return the oldest image of `rover` with these bytes, if any (what a resend gets)."""
    return RoverImage.objects.filter(rover=rover, sha256=sha256).order_by("pk").first()


def _files_give_back(
    *, path: Any, source: Path | None, final: Path | None, thumb: Path | None, staged: Path | None
) -> None:
    """Undo a store that failed: a finished upload gets its bytes back, the rest is deleted."""
    if path is not None and final is not None and final.exists() and not source.exists():
        # The client can retry completion, or the upload's own cleanup deletes them.
        os.replace(final, source)
    remove_quietly(staged, final, thumb)


class _UntilCommit:
    """Held only by an on_commit callback: freed when Django drops that callback."""


def _files_undo(final: Path, thumb: Path, given_back_to: Path | None) -> None:
    if given_back_to is not None and final.exists() and not given_back_to.exists():
        os.replace(final, given_back_to)
    remove_quietly(final, thumb)


def _files_undo_on_rollback(*, final: Path, thumb: Path, given_back_to: Path | None) -> None:
    """Remove (or give back) an image's files if the transaction holding its row rolls back.

    image_store may run inside a caller's transaction (or savepoint) that rolls back
    after it returned; the row is then gone and its files would be orphans.
    Django has no rollback hook, but it does drop the on_commit callbacks of a
    rolled-back transaction or savepoint (and only those). The callback
    registered here holds the one reference to a token whose finalizer undoes the
    files: on commit the callback runs and detaches the finalizer; on rollback
    Django drops the callback, CPython frees the token at once and the finalizer
    runs. The undo is idempotent, so it also agrees with image_store's own cleanup.
    """
    token = _UntilCommit()
    undo = weakref.finalize(token, _files_undo, final, thumb, given_back_to)
    transaction.on_commit(lambda token=token: undo.detach())


def image_announce(*, image: RoverImage) -> None:
    """Publish the `image` event on the rover's live stream once the row is committed.

    A failed publish is logged, not raised: dashboards still find the image in the
    list on reload.
    """
    publish_on_commit(rover_stream(image.rover.slug), image_event(image))


def image_delete(*, image: RoverImage) -> None:
    """Delete an image's row and both of its files."""
    names = [image.file.name, image.thumbnail.name]
    with transaction.atomic():
        image.delete()
        transaction.on_commit(
            lambda: [default_storage.delete(name) for name in names if name],
        )


def camera_parse(name: str | None) -> str:
    """Return the camera a client names, in any case (`NAVCAM`, as NASA writes it); navcam if none.

    Raise ImageRejected (400 `invalid_camera`, naming the parameter) for an unknown name.
    """
    camera = (name or "").strip().lower() or Camera.NAVCAM
    if camera not in Camera.values:
        raise ImageRejected(
            "invalid_camera",
            f"Unknown camera {client_repr(name)}; one of: {', '.join(Camera.values)} (any case).",
            parameter="camera",
        )
    return camera


def metadata_parse(*, camera: str | None, captured_at: str | None) -> tuple[str, datetime | None]:
    """Validate the client's camera and capture time (ISO 8601); raise ImageRejected.

    The capture time follows mission_control.parsing: after 1970, at most
    TIMESTAMP_MAX_FUTURE_SECONDS ahead, offset within ±14:00; naive means UTC.
    """
    camera = camera_parse(camera)
    try:
        when = parse_timestamp(captured_at or None, name="captured_at")
    except BadParameter as exc:
        raise ImageRejected("invalid_captured_at", exc.detail, parameter=exc.name) from None
    return camera, when
