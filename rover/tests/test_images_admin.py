"""Rover images in the admin: upload through image_store, list, filter, preview, delete."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rover.models import RoverImage
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = pytest.mark.usefixtures("own_media_root")


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", "a@example.org", "pw-123456")
    client.force_login(user)
    return client


def upload_file(data: bytes, name: str = "from-admin.jpg"):
    stream = io.BytesIO(data)
    stream.name = name
    return stream


def test_admin_upload_goes_through_image_store(staff, rover):
    data = jpeg_bytes(400, 300)
    response = staff.post(
        "/admin/rover/roverimage/add/",
        {"rover": rover.pk, "camera": "mahli", "captured_at_0": "", "upload": upload_file(data)},
    )
    assert response.status_code == 302, response.content[:2000]
    image = RoverImage.objects.get()
    assert (image.camera, image.width, image.height) == ("mahli", 400, 300)
    assert image.original_name == "from-admin.jpg"
    assert Path(image.file.path).read_bytes() == data
    assert image.thumbnail


def test_admin_upload_of_a_non_image_shows_the_error_and_stores_nothing(staff, rover, settings):
    response = staff.post(
        "/admin/rover/roverimage/add/",
        {"rover": rover.pk, "camera": "navcam", "upload": upload_file(b"plain text" * 20)},
    )
    assert response.status_code == 200
    assert b"not a readable image" in response.content
    assert not RoverImage.objects.exists()
    assert media_files(settings.MEDIA_ROOT) == []


def test_changelist_filters_and_shows_thumbnails(staff, store_image):
    image = store_image(camera="chemcam")
    response = staff.get("/admin/rover/roverimage/?camera__exact=chemcam")
    assert response.status_code == 200
    assert f"/api/images/{image.pk}/thumbnail".encode() in response.content
    response = staff.get("/admin/rover/roverimage/?camera__exact=navcam")
    assert f"/api/images/{image.pk}/thumbnail".encode() not in response.content
    assert staff.get(f"/admin/rover/roverimage/{image.pk}/change/").status_code == 200


def test_admin_delete_removes_the_files(
    staff, store_image, settings, django_capture_on_commit_callbacks
):
    image = store_image()
    assert media_files(settings.MEDIA_ROOT)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/admin/rover/roverimage/{image.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not RoverImage.objects.exists()
    assert media_files(settings.MEDIA_ROOT) == []
