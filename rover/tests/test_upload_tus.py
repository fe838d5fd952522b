"""tus 1.0 uplink through the ASGI request path: every status code and header."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from asgiref.sync import sync_to_async

from rover.models import ImageUpload, RoverImage
from rover.tests.clients import TokenClient
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files
from rover.tests.tus import COLLECTION, TUS, create, created_path, metadata, patch, upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]


async def test_options_announces_version_extensions_and_max_size(uploader, rover, settings):
    response = await uploader.options(COLLECTION)
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Extension"] == "creation,termination"
    assert response["Tus-Max-Size"] == str(settings.IMAGE_MAX_BYTES)
    assert response["Tus-Resumable"] == "1.0.0"


async def test_creation_answers_201_with_a_server_chosen_location(uploader, rover, settings):
    response = await create(uploader, 1234, metadata(filename="../../etc/passwd", camera="mastcam"))
    assert response.status_code == 201
    assert response["Tus-Resumable"] == "1.0.0"
    location = response["Location"]
    assert location.startswith("http://testserver/api/rovers/curiosity/uploads/")
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    upload = await ImageUpload.objects.aget(pk=upload_id)
    assert (upload.length, upload.offset) == (1234, 0)
    assert upload.metadata == {"filename": "../../etc/passwd", "camera": "mastcam"}
    assert media_files(settings.MEDIA_ROOT) == [f"uploads/{upload_id}"]


async def test_head_reports_offset_and_length_without_caching(uploader, rover):
    url = await created_path(uploader, 500)
    response = await uploader.head(url, headers=TUS)
    assert response.status_code == 200
    assert response["Upload-Offset"] == "0"
    assert response["Upload-Length"] == "500"
    assert response["Cache-Control"] == "no-store"
    assert response["Tus-Resumable"] == "1.0.0"


async def test_patches_append_and_the_last_one_stores_the_image(uploader, rover):
    data = jpeg_bytes(200, 150)
    meta = metadata(filename="pan.jpg", camera="navcam", captured_at="2023-01-02T03:04:05Z")
    url = await created_path(uploader, len(data), meta)
    first = await patch(uploader, url, 0, data[:1000])
    assert first.status_code == 204
    assert first["Upload-Offset"] == "1000"
    assert first["Tus-Resumable"] == "1.0.0"
    assert not await RoverImage.objects.aexists()
    last = await patch(uploader, url, 1000, data[1000:])
    assert last.status_code == 204
    assert last["Upload-Offset"] == str(len(data))
    image = await RoverImage.objects.aget()
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.original_name == "pan.jpg"
    assert image.captured_at.isoformat() == "2023-01-02T03:04:05+00:00"
    assert last["Rover-Image"] == f"/api/images/{image.pk}/download"
    upload = await ImageUpload.objects.aget()
    assert upload.image_id == image.pk
    # The temporary file is gone; a HEAD afterwards still reports completion.
    assert not (await sync_to_async(media_files)(image.file.storage.location + "/uploads"))
    head = await uploader.head(url, headers=TUS)
    assert head["Upload-Offset"] == str(len(data))


async def test_wrong_offset_is_409_with_the_real_offset(uploader, rover):
    url = await created_path(uploader, 100)
    await patch(uploader, url, 0, b"x" * 10)
    response = await patch(uploader, url, 5, b"y" * 10)
    assert response.status_code == 409
    assert response.json() == {
        "error": "offset_mismatch",
        "detail": "The upload is at offset 10.",
        "offset": 10,
    }
    assert response["Tus-Resumable"] == "1.0.0"


async def test_wrong_content_type_is_415(uploader, rover):
    url = await created_path(uploader, 100)
    response = await patch(uploader, url, 0, b"x", content_type="application/octet-stream")
    assert response.status_code == 415
    assert response["Tus-Resumable"] == "1.0.0"


async def test_missing_upload_offset_is_400(uploader, rover):
    url = await created_path(uploader, 100)
    response = await uploader.patch(
        url, data=b"x", content_type="application/offset+octet-stream", headers=TUS
    )
    assert response.status_code == 400


async def test_more_bytes_than_upload_length_is_413_and_nothing_is_appended(uploader, rover):
    url = await created_path(uploader, 10)
    response = await patch(uploader, url, 0, b"x" * 11)
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_bytes"
    assert (await uploader.head(url, headers=TUS))["Upload-Offset"] == "0"


async def test_unknown_malformed_and_foreign_uploads_are_404(
    uploader, rover, user_factory, token_for
):
    url = await created_path(uploader, 10)
    other = await sync_to_async(user_factory)(perms=("rover.add_roverimage",))
    stranger = TokenClient(await sync_to_async(token_for)(other))
    for target, who in (
        (f"{COLLECTION}{uuid.uuid4()}", uploader),
        (f"{COLLECTION}not-a-uuid", uploader),
        (url, stranger),
    ):
        response = await who.head(target, headers=TUS)
        assert response.status_code == 404, target
        assert response["Tus-Resumable"] == "1.0.0"
        response = await patch(who, target, 0, b"x")
        assert response.status_code == 404, target
        assert response.json()["error"] == "unknown_upload"
    # A path in the id never even reaches the view.
    response = await uploader.head(f"{COLLECTION}..%2F..%2Fsettings.py", headers=TUS)
    assert response.status_code == 404


async def test_creation_over_the_size_limit_is_413(uploader, rover, settings):
    settings.IMAGE_MAX_BYTES = 1000
    response = await create(uploader, 1001)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert not await ImageUpload.objects.aexists()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Upload-Length": "abc"}, "upload_length"),
        ({"Upload-Length": "0"}, "invalid_length"),
        ({"Upload-Metadata": "filename !!!notbase64"}, "upload_metadata"),
        # PostgreSQL stores no NUL in text or jsonb: refused here, not a 500 at the insert.
        ({"Upload-Metadata": metadata(filename="a\x00b.jpg")}, "upload_metadata"),
        ({"Upload-Metadata": metadata(filetype="\x00")}, "upload_metadata"),
        ({"Upload-Metadata": metadata(camera="toaster")}, "invalid_camera"),
        ({"Upload-Metadata": metadata(captured_at="soon")}, "invalid_captured_at"),
        ({"Upload-Defer-Length": "1"}, "defer_length"),
    ],
)
async def test_bad_creation_requests_are_400_and_create_nothing(
    uploader, rover, settings, headers, code
):
    headers = {**TUS, "Upload-Length": "100", **headers}
    response = await uploader.post(COLLECTION, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert not await ImageUpload.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == []


async def test_requests_without_tus_resumable_are_412(uploader, rover):
    response = await uploader.post(COLLECTION, headers={"Upload-Length": "10"})
    assert response.status_code == 412
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Resumable"] == "1.0.0"


async def test_completed_upload_that_is_not_an_image_is_rejected_and_leaves_nothing(
    uploader, rover, settings
):
    junk = b"MZ this is an executable, not a picture" * 50
    _url, response = await upload(uploader, junk, metadata(filename="x.jpg"))
    assert response.status_code == 400
    assert response.json()["error"] == "not_an_image"
    assert response["Tus-Resumable"] == "1.0.0"
    assert not await RoverImage.objects.aexists()
    assert not await ImageUpload.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == []


async def test_termination_deletes_the_upload_and_its_file(uploader, rover, settings):
    url = await created_path(uploader, 100)
    await patch(uploader, url, 0, b"x" * 10)
    response = await uploader.delete(url, headers=TUS)
    assert response.status_code == 204
    assert not await ImageUpload.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == []


async def test_uploads_need_a_token_with_the_add_permission(rover, user_factory, token_for):
    from django.test import AsyncClient

    response = await AsyncClient().post(COLLECTION, headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 401
    assert response["Tus-Resumable"] == "1.0.0"
    viewer = await sync_to_async(user_factory)()
    response = await create(TokenClient(await sync_to_async(token_for)(viewer)), 10)
    assert response.status_code == 403


async def test_unknown_rover_is_404(uploader, db):
    response = await uploader.post(
        "/api/rovers/nope/uploads/", headers={**TUS, "Upload-Length": "10"}
    )
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_rover"


async def test_a_second_writer_at_the_same_time_gets_423(uploader, rover, settings):
    import fcntl
    from pathlib import Path

    url = await created_path(uploader, 100)
    upload_file = Path(settings.MEDIA_ROOT) / "uploads" / url.rsplit("/", 1)[1]
    with open(upload_file, "r+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a PATCH in progress holds
        response = await patch(uploader, url, 0, b"x" * 10)
    assert response.status_code == 423
    assert (await uploader.head(url, headers=TUS))["Upload-Offset"] == "0"


async def test_a_termination_while_a_patch_writes_gets_423_and_deletes_nothing(
    uploader, rover, settings
):
    import fcntl
    from pathlib import Path

    url = await created_path(uploader, 100)
    upload_file = Path(settings.MEDIA_ROOT) / "uploads" / url.rsplit("/", 1)[1]
    with open(upload_file, "r+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a PATCH in progress holds
        response = await uploader.delete(url, headers=TUS)
    assert response.status_code == 423
    assert upload_file.exists() and await ImageUpload.objects.aexists()
    assert (await uploader.delete(url, headers=TUS)).status_code == 204


async def test_expired_unfinished_uploads_are_pruned_when_a_new_one_starts(
    uploader, rover, settings
):
    from datetime import timedelta

    from django.utils import timezone

    old = await created_path(uploader, 100)
    await ImageUpload.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    fresh = await created_path(uploader, 100)
    assert (await uploader.head(old, headers=TUS)).status_code == 404
    assert (await uploader.head(fresh, headers=TUS)).status_code == 200
    assert media_files(settings.MEDIA_ROOT) == [f"uploads/{fresh.rsplit('/', 1)[1]}"]


async def test_patch_to_a_completed_upload_is_refused_but_head_still_answers(uploader, rover):
    data = jpeg_bytes(50, 40)
    url, done = await upload(uploader, data)
    assert done.status_code == 204
    again = await patch(uploader, url, len(data), b"more")
    assert again.status_code == 400
    assert again.json()["error"] == "upload_complete"
    stale = await patch(uploader, url, 0, data)
    assert stale.status_code == 409
    assert await RoverImage.objects.acount() == 1


async def test_a_finished_upload_of_bytes_already_stored_links_the_stored_image(uploader, rover):
    data = jpeg_bytes(90, 60)
    images = []
    for _ in range(2):
        _url, done = await upload(uploader, data, metadata(camera="navcam"))
        assert done.status_code == 204
        images.append(done["Rover-Image"])
    assert images[0] == images[1]
    image = await RoverImage.objects.aget()
    assert [u.image_id async for u in ImageUpload.objects.all()] == [image.pk, image.pk]
    assert not (await sync_to_async(media_files)(image.file.storage.location + "/uploads"))
