"""image_store: validation by Pillow, hashing, thumbnails, nothing half-stored."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from rover.events import image_json
from rover.models import RoverImage
from rover.services.images import ImageRejected, image_store
from rover.tests.factories import jpeg_bytes, png_bytes
from rover.tests.media import media_files

pytestmark = pytest.mark.usefixtures("own_media_root")


def test_store_records_hash_size_type_dimensions_and_thumbnail(store_image, settings):
    data = jpeg_bytes(800, 600)
    image = store_image(data=data, camera="mastcam")
    assert image.size == len(data)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.content_type == "image/jpeg"
    assert (image.width, image.height) == (800, 600)
    assert Path(image.file.path).read_bytes() == data
    with Image.open(image.thumbnail.path) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 320
    assert image.file.name.startswith("rover-images/")
    assert "frame" not in image.file.name  # the client's name never reaches the disk


def test_mime_type_comes_from_the_data_not_the_name(store_image):
    image = store_image(data=png_bytes(), original_name="looks-like.jpg")
    assert image.content_type == "image/png"
    assert image.file.name.endswith(".png")


def test_json_has_the_documented_fields(store_image):
    image = store_image()
    data = image_json(image)
    assert set(data) >= {
        "id",
        "camera",
        "captured_at",
        "size",
        "sha256",
        "content_type",
        "width",
        "height",
        "url",
        "thumbnail_url",
    }
    assert data["url"] == f"/api/images/{image.pk}/download"
    assert data["thumbnail_url"] == f"/api/images/{image.pk}/thumbnail"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"just some text, not a picture" * 10, "not_an_image"),
        (jpeg_bytes(200, 200)[:-400], "not_an_image"),  # truncated
        (b"", "empty"),
    ],
)
def test_invalid_data_is_rejected_and_leaves_nothing(rover, settings, data, code):
    before = media_files(settings.MEDIA_ROOT)
    with pytest.raises(ImageRejected) as info:
        image_store(rover=rover, fileobj=io.BytesIO(data), original_name="x.jpg")
    assert info.value.code == code
    assert not RoverImage.objects.exists()
    assert media_files(settings.MEDIA_ROOT) == before


def test_too_large_is_rejected_with_413_and_leaves_nothing(rover, settings):
    settings.IMAGE_MAX_BYTES = 1000
    before = media_files(settings.MEDIA_ROOT)
    with pytest.raises(ImageRejected) as info:
        image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes(200, 200)))
    assert (info.value.code, info.value.status) == ("too_large", 413)
    assert not RoverImage.objects.exists()
    assert media_files(settings.MEDIA_ROOT) == before


def test_unknown_camera_is_rejected(rover):
    with pytest.raises(ImageRejected) as info:
        image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes()), camera="selfie-stick")
    assert info.value.code == "invalid_camera"


def test_database_failure_removes_the_written_files(rover, settings, monkeypatch):
    before = media_files(settings.MEDIA_ROOT)

    def broken_create(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(RoverImage.objects, "create", broken_create)
    with pytest.raises(RuntimeError):
        image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes()))
    assert media_files(settings.MEDIA_ROOT) == before


def test_store_announces_the_image_after_commit(
    rover, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        "streams.hub.publish_from_sync", lambda stream, event: sent.append((stream, event))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        image = image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes()))
    assert sent == []  # nothing is announced before the row is committed
    for callback in callbacks:
        callback()
    [(stream, event)] = sent
    assert stream == "rover.curiosity"
    assert event["event"] == "image" and event["id"] is None
    import json

    assert json.loads(event["data"]) == image_json(image)


def test_failed_store_from_a_path_gives_the_upload_its_bytes_back(rover, settings, monkeypatch):
    from rover.services.images import uploads_dir

    data = jpeg_bytes()
    source = uploads_dir() / "finished-upload"
    source.write_bytes(data)

    def broken_create(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(RoverImage.objects, "create", broken_create)
    with pytest.raises(RuntimeError):
        image_store(rover=rover, path=source)
    assert source.read_bytes() == data
    assert media_files(settings.MEDIA_ROOT) == ["uploads/finished-upload"]
