"""Resumable (tus 1.0) image uploads: create, append at an offset, complete, discard.

An upload is a row (`ImageUpload`: length, offset, metadata, expiry) and a
temporary file under MEDIA_ROOT/uploads named by the upload's server id. Each
PATCH appends at the recorded offset under an advisory file lock, so two
requests never write one upload at once; the last byte hands the file to
`image_store` (`rover/services/images.py`), and an upload that is not an
acceptable image is discarded. Unfinished uploads expire after UPLOAD_LIFETIME.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ..models import ImageUpload, Rover, RoverImage
from .images import (
    COPY_CHUNK_BYTES,
    ImageRejected,
    image_store_once,
    metadata_parse,
    remove_quietly,
    too_large_error,
    uploads_dir,
)

UPLOAD_LIFETIME = timedelta(hours=24)


class UploadConflict(Exception):
    """The client's Upload-Offset is not the server's (tus answers 409)."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"The upload is at offset {offset}.")
        self.offset = offset


class UploadBusy(Exception):
    """Another request is writing to this upload right now."""


class UploadLimitReached(Exception):
    """The user holds as many open uploads as UPLOAD_MAX_OPEN_PER_USER allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"At most {limit} open uploads per user.")
        self.limit = limit


def upload_path(upload: ImageUpload) -> Path:
    """Return the temporary file of an upload: MEDIA_ROOT/uploads/<uuid> (server id only)."""
    return uploads_dir() / str(uuid.UUID(str(upload.pk)))


def upload_create(*, rover: Rover, user: Any, length: int, metadata: dict[str, str]) -> ImageUpload:
    """Start a resumable upload of `length` bytes; validate its metadata first."""
    if length <= 0:
        raise ImageRejected("invalid_length", "Upload-Length must be a positive integer.")
    if length > settings.IMAGE_MAX_BYTES:
        raise too_large_error(settings.IMAGE_MAX_BYTES)
    metadata_parse(camera=metadata.get("camera"), captured_at=metadata.get("captured_at"))
    upload_prune_expired()
    upload = ImageUpload(
        rover=rover,
        user=user,
        length=length,
        metadata=metadata,
        expires_at=timezone.now() + UPLOAD_LIFETIME,
    )
    path = upload_path(upload)
    with transaction.atomic():
        _check_open_uploads(user=user)
        upload.save()
        path.touch(exist_ok=False)
    return upload


def _check_open_uploads(*, user: Any) -> None:
    """Raise UploadLimitReached when `user` already holds UPLOAD_MAX_OPEN_PER_USER open uploads.

    Each open upload may grow to IMAGE_MAX_BYTES on disk and lives a day: without
    a cap one token could fill MEDIA_ROOT. Call inside the creating transaction.
    """
    limit = settings.UPLOAD_MAX_OPEN_PER_USER
    if limit <= 0:
        return
    # The user's row is the lock (PostgreSQL): two creations at once cannot both take
    # the last place. On SQLite the IMMEDIATE transaction (settings) already serialises them.
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    open_uploads = ImageUpload.objects.filter(
        user=user, image__isnull=True, expires_at__gt=timezone.now()
    )
    if open_uploads.count() >= limit:
        raise UploadLimitReached(limit)


def upload_require_live(*, upload: ImageUpload) -> None:
    """Raise ImageRejected (410) when an unfinished upload has expired or lost its file.

    Such an upload is discarded on the way (unless a PATCH still holds it: the prune
    gets it later). A completed upload stays readable until the prune deletes it.
    """
    if upload.image_id is not None:
        return
    if upload.expires_at <= timezone.now():
        with contextlib.suppress(UploadBusy):  # a PATCH holds it: the prune gets it later
            upload_terminate(upload=upload)
        raise ImageRejected(
            "upload_expired", "The upload has expired; start a new upload.", status=410
        )
    if not upload_path(upload).exists():
        upload_discard(upload=upload)
        raise _gone()


def _open_locked(path: Path) -> IO[bytes]:
    """Open the upload's file under an exclusive advisory lock (until closed); UploadBusy if taken.

    The lock is across processes: one writer per upload at a time, and neither a
    termination nor the expiry prune deletes an upload while a PATCH holds it.
    """
    target = open(path, "r+b")  # noqa: SIM115 - the caller closes it, which releases the lock
    try:
        fcntl.flock(target.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        target.close()
        raise UploadBusy(path.name) from exc
    return target


def upload_append(*, upload: ImageUpload, offset: int, stream: IO[bytes]) -> ImageUpload:
    """Append the request body at `offset`; store the image once the upload is complete.

    Raise UploadConflict when `offset` is not the upload's, UploadBusy when another
    request holds the upload, ImageRejected when the upload has expired or is gone
    (410), the bytes overrun Upload-Length, or the completed file is not an acceptable
    image (the upload is then discarded; a busy server (5xx) keeps it for a retry).
    """
    path = upload_path(upload)
    upload_require_live(upload=upload)
    if upload.image_id is not None:
        upload.refresh_from_db()
        if upload.offset != offset:
            raise UploadConflict(upload.offset)
        if stream.read(1):
            raise ImageRejected(
                "upload_complete", "The upload is complete; no more bytes.", status=400
            )
        return upload
    try:
        target = _open_locked(path)
    except FileNotFoundError:
        raise _gone() from None  # discarded since the look-up
    with target:
        upload.refresh_from_db()
        if upload.offset != offset:
            raise UploadConflict(upload.offset)
        room = upload.length - offset
        target.seek(offset)
        # Bytes past the recorded offset are from a request that died midway.
        target.truncate()
        written = 0
        while chunk := stream.read(COPY_CHUNK_BYTES):
            written += len(chunk)
            if written > room:
                target.truncate(offset)
                raise ImageRejected(
                    "too_many_bytes",
                    f"The upload has room for {room} more bytes (Upload-Length).",
                    status=413,
                )
            target.write(chunk)
        target.flush()
        ImageUpload.objects.filter(pk=upload.pk).update(offset=offset + written)
        upload.offset = offset + written
        if upload.offset == upload.length:
            # Still under the lock: a second PATCH or a termination cannot race the store.
            upload_complete(upload=upload)
    return upload


def _gone() -> ImageRejected:
    return ImageRejected(
        "upload_gone", "The upload's data is gone; start a new upload.", status=410
    )


def upload_complete(*, upload: ImageUpload) -> RoverImage:
    """Store a finished upload as an image; discard it if the client's bytes are refused.

    A refusal of the server's own (503 `busy`: every thumbnail slot taken) keeps the
    upload whole, so the client's retry (an empty PATCH at the end) completes it.
    """
    path = upload_path(upload)
    camera, captured_at = metadata_parse(
        camera=upload.metadata.get("camera"), captured_at=upload.metadata.get("captured_at")
    )
    try:
        image, _created = image_store_once(
            rover=upload.rover,
            path=path,
            camera=camera,
            captured_at=captured_at,
            user=upload.user,
            original_name=os.path.basename(upload.metadata.get("filename", "")),
        )
    except ImageRejected as exc:
        if exc.status < 500:
            upload_discard(upload=upload)
        raise
    remove_quietly(path)
    ImageUpload.objects.filter(pk=upload.pk).update(image=image)
    upload.image = image
    return image


def upload_discard(*, upload: ImageUpload) -> None:
    """Delete an upload and its temporary file (the caller holds it or nobody writes it)."""
    path = upload_path(upload)
    ImageUpload.objects.filter(pk=upload.pk).delete()
    remove_quietly(path)


def upload_terminate(*, upload: ImageUpload) -> None:
    """Delete an upload at its client's request (tus termination); UploadBusy mid-PATCH."""
    try:
        target = _open_locked(upload_path(upload))
    except FileNotFoundError:
        upload_discard(upload=upload)  # completed (its file is now the image's) or gone
        return
    with target:
        upload_discard(upload=upload)


def upload_prune_expired(*, dry_run: bool = False) -> int:
    """Discard unfinished uploads past their expiry; return how many (only count if dry_run).

    One that a PATCH is writing right now is left for the next run.
    """
    expired = list(ImageUpload.objects.filter(expires_at__lt=timezone.now(), image__isnull=True))
    if dry_run:
        return len(expired)
    discarded = 0
    for upload in expired:
        try:
            upload_terminate(upload=upload)
            discarded += 1
        except UploadBusy:
            continue
    ImageUpload.objects.filter(expires_at__lt=timezone.now(), image__isnull=False).delete()
    return discarded


def upload_orphans_prune(*, dry_run: bool = False) -> int:
    """Delete files under MEDIA_ROOT/uploads older than UPLOAD_LIFETIME that no upload owns.

    A worker killed mid-request can leave a staged copy (`incoming-...`) or an
    upload file whose row is gone; nothing else would ever delete them.
    Return how many (only count if dry_run).
    """
    cutoff = (timezone.now() - UPLOAD_LIFETIME).timestamp()
    live = {str(pk) for pk in ImageUpload.objects.values_list("pk", flat=True)}
    orphans = []
    for entry in os.scandir(uploads_dir()):
        if entry.name in live or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                orphans.append(Path(entry.path))
        except FileNotFoundError:
            continue
    if not dry_run:
        remove_quietly(*orphans)
    return len(orphans)
