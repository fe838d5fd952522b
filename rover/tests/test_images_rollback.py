"""An image stored inside a transaction that later rolls back leaves no file behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.db import transaction

from rover.models import RoverImage
from rover.services.images import image_store
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]


class Abort(Exception):
    pass


def store(rover) -> RoverImage:
    return image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes()))


def test_outer_transaction_rolling_back_after_image_store_removes_its_files(rover, settings):
    with pytest.raises(Abort), transaction.atomic():
        image = store(rover)
        assert Path(image.file.path).exists() and Path(image.thumbnail.path).exists()
        raise Abort
    assert not RoverImage.objects.exists()
    assert media_files(settings.MEDIA_ROOT) == []


def test_a_rolled_back_savepoint_removes_only_its_own_image_files(rover, settings):
    with transaction.atomic():
        kept = store(rover)
        with pytest.raises(Abort), transaction.atomic():
            dropped = store(rover)
            raise Abort
        assert not Path(dropped.file.path).exists()
        assert not Path(dropped.thumbnail.path).exists()
    assert list(RoverImage.objects.values_list("pk", flat=True)) == [kept.pk]
    assert media_files(settings.MEDIA_ROOT) == sorted([kept.file.name, kept.thumbnail.name])


def test_committed_images_keep_their_files(rover, settings):
    with transaction.atomic():
        image = store(rover)
    outside = store(rover)
    assert media_files(settings.MEDIA_ROOT) == sorted(
        [image.file.name, image.thumbnail.name, outside.file.name, outside.thumbnail.name]
    )


def test_a_finished_upload_rolled_back_gets_its_bytes_back(rover, settings):
    """A tus upload stored from its path is moved back there, so completion can be retried."""
    data = jpeg_bytes()
    upload = Path(settings.MEDIA_ROOT) / "uploads" / "finished"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(data)
    with pytest.raises(Abort), transaction.atomic():
        image_store(rover=rover, path=upload)
        assert not upload.exists()
        raise Abort
    assert upload.read_bytes() == data
    assert media_files(settings.MEDIA_ROOT) == ["uploads/finished"]
