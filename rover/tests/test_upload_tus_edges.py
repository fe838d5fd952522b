"""tus uploads at their edges: a busy server at completion, expiry, termination mid-PATCH."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from rover.models import ImageUpload, RoverImage
from rover.services import images as image_service
from rover.services.images import ImageRejected
from rover.services.thumbnails import ThumbnailBusy
from rover.services.uploads import (
    UploadBusy,
    upload_append,
    upload_create,
    upload_path,
    upload_prune_expired,
    upload_terminate,
)
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_media_root")]


def start(rover, user, data: bytes) -> ImageUpload:
    return upload_create(rover=rover, user=user, length=len(data), metadata={})


def test_a_busy_server_at_completion_keeps_the_upload_for_a_retry(
    rover, uploader_user, monkeypatch
):
    """503 busy is the server's state, not the client's bytes: the upload must survive it."""
    data = jpeg_bytes(80, 60)
    upload = start(rover, uploader_user, data)

    def busy(*args, **kwargs):
        raise ThumbnailBusy("every thumbnail slot is taken")

    with monkeypatch.context() as patched:
        patched.setattr(image_service, "thumbnail_jpeg", busy)
        with pytest.raises(ImageRejected) as refused:
            upload_append(upload=upload, offset=0, stream=io.BytesIO(data))
    assert refused.value.status == 503
    kept = ImageUpload.objects.get(pk=upload.pk)
    assert (kept.offset, kept.image_id) == (len(data), None)
    assert upload_path(kept).read_bytes() == data

    # The retry (an empty PATCH at the end) completes it.
    done = upload_append(upload=kept, offset=len(data), stream=io.BytesIO(b""))
    assert done.image_id == RoverImage.objects.get().pk


def test_a_patch_to_an_expired_upload_is_410_and_discards_it(rover, uploader_user, own_media_root):
    data = jpeg_bytes(80, 60)
    upload = start(rover, uploader_user, data)
    ImageUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    upload.refresh_from_db()
    with pytest.raises(ImageRejected) as refused:
        upload_append(upload=upload, offset=0, stream=io.BytesIO(data))
    assert (refused.value.status, refused.value.code) == (410, "upload_expired")
    assert not ImageUpload.objects.exists() and not RoverImage.objects.exists()
    assert media_files(own_media_root) == []


class DiscardedMidway(io.BytesIO):
    """A PATCH body during whose reading the upload is discarded (DELETE, expiry prune)."""

    def __init__(self, data: bytes, discard) -> None:
        super().__init__(data)
        self.discard = discard

    def read(self, size: int = -1) -> bytes:
        if self.discard is not None:
            discard, self.discard = self.discard, None
            discard()
        return super().read(size)


def test_a_termination_during_a_patch_waits_its_turn_423(rover, uploader_user):
    data = jpeg_bytes(80, 60)
    upload = start(rover, uploader_user, data)
    refusals: list[Exception] = []

    def terminate() -> None:
        try:
            upload_terminate(upload=ImageUpload.objects.get(pk=upload.pk))
        except UploadBusy as exc:
            refusals.append(exc)

    upload_append(upload=upload, offset=0, stream=DiscardedMidway(data, terminate))
    assert len(refusals) == 1
    assert RoverImage.objects.count() == 1


def test_expiry_pruning_leaves_an_upload_being_written_alone(rover, uploader_user):
    data = jpeg_bytes(80, 60)
    upload = start(rover, uploader_user, data)
    pruned: list[int] = []

    def prune() -> None:
        ImageUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        pruned.append(upload_prune_expired())

    upload_append(upload=upload, offset=0, stream=DiscardedMidway(data, prune))
    assert pruned == [0]
    assert RoverImage.objects.count() == 1
