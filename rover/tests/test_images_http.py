"""Image HTTP API through the ASGI request path (AsyncClient): list, download, uplink."""

from __future__ import annotations

import hashlib
import io

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils.http import http_date

from rover.models import RoverImage
from rover.tests.clients import TokenClient
from rover.tests.factories import jpeg_bytes, png_bytes
from rover.tests.media import media_files

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]


@pytest.fixture
def reader(user_factory, token_for):
    return TokenClient(token_for(user_factory()))


@pytest.fixture
def image(store_image):
    return store_image(data=jpeg_bytes(300, 200), original_name="dune.jpg")


async def body_of(response) -> bytes:
    if response.streaming:
        return b"".join([chunk async for chunk in response.streaming_content])
    return response.content


# --- download: full, HEAD, headers -----------------------------------------------------------


async def test_download_streams_the_whole_file_with_every_header(reader, image):
    data = await sync_to_async(image.file.read)()
    response = await reader.get(f"/api/images/{image.pk}/download")
    assert response.status_code == 200
    assert response.streaming
    assert await body_of(response) == data
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Length"] == str(len(data))
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response["Last-Modified"] == http_date(image.received_at.timestamp())
    assert response["Content-Disposition"] == 'inline; filename="dune.jpg"'


@pytest.mark.parametrize(
    ("uploaded_as", "disposition"),
    [
        ("evil.html", 'inline; filename="evil.jpg"'),
        # A quote cannot end the name early: Django escapes it inside the quoted string.
        ("a\"; filename*=UTF-8''evil.html", 'inline; filename="a\\"; filename*=UTF-8\'\'evil.jpg"'),
        ("pan.JPEG", 'inline; filename="pan.JPEG"'),
        ("pan", 'inline; filename="pan.jpg"'),
    ],
)
async def test_the_download_name_keeps_an_extension_only_if_it_names_the_files_type(
    reader, store_image, uploaded_as, disposition
):
    image = await sync_to_async(store_image)(data=jpeg_bytes(30, 20), original_name=uploaded_as)
    response = await reader.get(f"/api/images/{image.pk}/download")
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"] == disposition


async def test_head_answers_headers_only(reader, image):
    response = await reader.head(f"/api/images/{image.pk}/download")
    assert response.status_code == 200
    assert response["Content-Length"] == str(image.size)
    assert response["ETag"] == f'"{image.sha256}"'
    assert await body_of(response) == b""


async def test_download_needs_a_login(image):
    response = await AsyncClient().get(f"/api/images/{image.pk}/download")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_unknown_image_is_404(reader, db):
    response = await reader.get("/api/images/999999/download")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_missing_file_is_404_not_500(reader, image):
    await sync_to_async(image.file.storage.delete)(image.file.name)
    response = await reader.get(f"/api/images/{image.pk}/download")
    assert response.status_code == 404
    assert response.json()["error"] == "file_missing"


async def test_post_to_download_is_405(reader, image):
    response = await reader.post(f"/api/images/{image.pk}/download")
    assert response.status_code == 405


async def test_thumbnail_is_a_small_jpeg(reader, image):
    response = await reader.get(f"/api/images/{image.pk}/thumbnail")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    body = await body_of(response)
    assert body[:3] == b"\xff\xd8\xff"
    assert len(body) == int(response["Content-Length"])
    assert response["ETag"] != f'"{image.sha256}"'


# --- conditional requests ----------------------------------------------------------------------


async def test_if_none_match_with_the_etag_is_304(reader, image):
    url = f"/api/images/{image.pk}/download"
    response = await reader.get(url, headers={"If-None-Match": f'"{image.sha256}"'})
    assert response.status_code == 304
    assert response["ETag"] == f'"{image.sha256}"'
    assert await body_of(response) == b""


async def test_if_none_match_weak_or_in_a_list_is_304_and_star_too(reader, image):
    url = f"/api/images/{image.pk}/download"
    for value in (f'"other", W/"{image.sha256}"', "*"):
        response = await reader.get(url, headers={"If-None-Match": value})
        assert response.status_code == 304, value


async def test_if_none_match_with_another_etag_is_200(reader, image):
    url = f"/api/images/{image.pk}/download"
    response = await reader.get(url, headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200


async def test_if_modified_since_answers_304_unless_newer(reader, image):
    url = f"/api/images/{image.pk}/download"
    modified = image.received_at.timestamp()
    response = await reader.get(url, headers={"If-Modified-Since": http_date(modified)})
    assert response.status_code == 304
    response = await reader.get(url, headers={"If-Modified-Since": http_date(modified - 60)})
    assert response.status_code == 200


async def test_if_none_match_wins_over_if_modified_since(reader, image):
    url = f"/api/images/{image.pk}/download"
    headers = {
        "If-None-Match": '"stale"',
        "If-Modified-Since": http_date(image.received_at.timestamp() + 60),
    }
    response = await reader.get(url, headers=headers)
    assert response.status_code == 200


async def test_if_match_mismatch_is_412(reader, image):
    response = await reader.get(f"/api/images/{image.pk}/download", headers={"If-Match": '"stale"'})
    assert response.status_code == 412


# --- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=10-999999999", 10, None),
    ],
)
async def test_single_range_answers_206_with_content_range(reader, image, spec, first, last):
    data = await sync_to_async(image.file.read)()
    size = len(data)
    start = first if first >= 0 else size + first
    stop = (last if last is not None else size - 1) + 1
    response = await reader.get(f"/api/images/{image.pk}/download", headers={"Range": spec})
    assert response.status_code == 206
    assert await body_of(response) == data[start:stop]
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
    assert response["Content-Length"] == str(stop - start)


@pytest.mark.parametrize("spec", ["bytes=999999999-", "bytes=-0"])
async def test_unsatisfiable_range_is_416_with_the_size(reader, image, spec):
    response = await reader.get(f"/api/images/{image.pk}/download", headers={"Range": spec})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{image.size}"
    assert response.json()["error"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    "spec", ["bytes=abc", "bytes=20-10", "items=0-10", "bytes=0-1,5-6", "bytes=-", "bytes"]
)
async def test_malformed_or_multiple_ranges_are_ignored(reader, image, spec):
    response = await reader.get(f"/api/images/{image.pk}/download", headers={"Range": spec})
    assert response.status_code == 200
    assert len(await body_of(response)) == image.size
    assert "Content-Range" not in response


async def test_if_range_with_the_current_etag_or_date_honours_the_range(reader, image):
    url = f"/api/images/{image.pk}/download"
    for validator in (f'"{image.sha256}"', http_date(image.received_at.timestamp())):
        response = await reader.get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert response.status_code == 206, validator
        assert len(await body_of(response)) == 10


async def test_if_range_with_a_stale_validator_sends_the_whole_file(reader, image):
    url = f"/api/images/{image.pk}/download"
    for validator in ('"stale"', f'W/"{image.sha256}"', "Tue, 01 Jan 2019 00:00:00 GMT"):
        response = await reader.get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert response.status_code == 200, validator
        assert len(await body_of(response)) == image.size


async def test_head_ignores_range(reader, image):
    response = await reader.head(f"/api/images/{image.pk}/download", headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response["Content-Length"] == str(image.size)


# --- the seed's URL ------------------------------------------------------------------------------


async def test_stream_rover_image_serves_the_newest_image(reader, store_image, settings):
    from datetime import UTC, datetime

    await sync_to_async(store_image)(captured_at=datetime(2030, 1, 1, tzinfo=UTC))
    newest = await sync_to_async(store_image)(
        data=png_bytes(), captured_at=datetime(2030, 1, 2, tzinfo=UTC)
    )
    response = await reader.get("/stream/rover-image")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["ETag"] == f'"{newest.sha256}"'


async def test_stream_rover_image_is_closed_unless_public_feeds(image, settings):
    assert (await AsyncClient().get("/stream/rover-image")).status_code == 401
    settings.PUBLIC_FEEDS = True
    response = await AsyncClient().get("/stream/rover-image")
    assert response.status_code == 200
    assert len(await body_of(response)) == image.size


async def test_stream_rover_image_without_images_is_404(reader, rover):
    response = await reader.get("/stream/rover-image")
    assert response.status_code == 404
    assert response.json()["error"] == "no_image"


# --- list ----------------------------------------------------------------------------------------


async def test_list_is_newest_first_and_paginated(reader, store_image):
    from datetime import UTC, datetime, timedelta

    base = datetime(2031, 5, 1, tzinfo=UTC)
    ids = []
    for minute in range(5):
        stored = await sync_to_async(store_image)(captured_at=base + timedelta(minutes=minute))
        ids.append(stored.pk)
    response = await reader.get("/api/rovers/curiosity/images?limit=2")
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 5
    assert [item["id"] for item in page["results"]] == ids[::-1][:2]
    assert page["next"] == "/api/rovers/curiosity/images?page=2&limit=2"
    assert page["previous"] is None
    last = (await reader.get("/api/rovers/curiosity/images?page=3&limit=2")).json()
    assert [item["id"] for item in last["results"]] == [ids[0]]
    assert last["next"] is None
    item = page["results"][0]
    assert item["url"] == f"/api/images/{item['id']}/download"
    assert item["content_type"] == "image/jpeg"


async def test_list_rejects_bad_paging_and_unknown_rover(reader, rover):
    assert (await reader.get("/api/rovers/curiosity/images?page=0")).status_code == 400
    assert (await reader.get("/api/rovers/curiosity/images?limit=x")).status_code == 400
    response = await reader.get("/api/rovers/nope/images")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_rover"


async def test_list_needs_a_login(rover):
    assert (await AsyncClient().get("/api/rovers/curiosity/images")).status_code == 401


# --- multipart uplink ----------------------------------------------------------------------------


def multipart(data: bytes, name: str = "shot.jpg", **fields):
    upload = io.BytesIO(data)
    upload.name = name
    return {"file": upload, **fields}


async def test_multipart_upload_stores_and_answers_201(uploader, rover):
    data = jpeg_bytes(120, 90)
    response = await uploader.post(
        "/api/rovers/curiosity/images",
        multipart(data, camera="hazcam_front", captured_at="2022-03-04T05:06:07Z"),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["camera"] == "hazcam_front"
    assert body["captured_at"] == "2022-03-04T05:06:07Z"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["width"], body["height"]) == (120, 90)
    assert response["Location"] == body["url"]
    download = await uploader.get(body["url"])
    assert await body_of(download) == data


async def test_multipart_upload_needs_the_add_permission(reader, rover):
    response = await reader.post("/api/rovers/curiosity/images", multipart(jpeg_bytes()))
    assert response.status_code == 403
    response = await AsyncClient().post("/api/rovers/curiosity/images", multipart(jpeg_bytes()))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"file": None}, 400, "file_missing"),
        ({"data": b"%PDF-1.4 not an image"}, 400, "not_an_image"),
        ({"camera": "toaster"}, 400, "invalid_camera"),
        ({"captured_at": "yesterday"}, 400, "invalid_captured_at"),
    ],
)
async def test_multipart_rejections_say_why_and_store_nothing(
    uploader, rover, settings, payload, status, code
):
    before = media_files(settings.MEDIA_ROOT)
    fields = multipart(payload.pop("data", jpeg_bytes()), **payload)
    if fields["file"] is None:
        fields.pop("file")
        fields["other"] = "x"
    response = await uploader.post("/api/rovers/curiosity/images", fields)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert not await RoverImage.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == before


async def test_multipart_over_the_size_limit_is_413(uploader, rover, settings):
    settings.IMAGE_MAX_BYTES = 2000
    response = await uploader.post("/api/rovers/curiosity/images", multipart(jpeg_bytes(300, 300)))
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert not await RoverImage.objects.aexists()


async def test_multipart_to_an_unknown_rover_is_404(uploader, db):
    response = await uploader.post("/api/rovers/nope/images", multipart(jpeg_bytes()))
    assert response.status_code == 404


async def test_session_upload_without_csrf_token_is_refused(user_factory, rover):
    user = await sync_to_async(user_factory)(perms=("rover.add_roverimage",))
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    response = await client.post("/api/rovers/curiosity/images", multipart(jpeg_bytes()))
    assert response.status_code == 403
    assert not await RoverImage.objects.aexists()


async def test_upload_announces_an_image_event_on_the_rover_stream(uploader, rover):
    import json

    from streams.hub import subscribe

    async with subscribe("rover.curiosity") as sub:
        response = await uploader.post("/api/rovers/curiosity/images", multipart(jpeg_bytes()))
        assert response.status_code == 201
        import asyncio

        event = await asyncio.wait_for(sub.get(), 5)
    assert event["event"] == "image"
    assert event["id"] is None
    assert json.loads(event["data"]) == response.json()


async def test_the_same_bytes_again_answer_the_stored_image_not_a_second_row(
    uploader, rover, settings
):
    data = jpeg_bytes(64, 48)
    first = await uploader.post("/api/rovers/curiosity/images", multipart(data))
    assert first.status_code == 201, first.content
    files_before = await sync_to_async(media_files)(settings.MEDIA_ROOT)
    again = await uploader.post("/api/rovers/curiosity/images", multipart(data, name="retry.jpg"))
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert await RoverImage.objects.acount() == 1
    # Nothing written for the retry: no second file, no staged copy left behind.
    assert await sync_to_async(media_files)(settings.MEDIA_ROOT) == files_before
    other = await uploader.post("/api/rovers/curiosity/images", multipart(jpeg_bytes(65, 48)))
    assert other.status_code == 201
    assert await RoverImage.objects.acount() == 2
