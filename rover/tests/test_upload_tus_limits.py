"""tus uploads past their life (410 on every read) and the per-user cap on open uploads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from rover.models import ImageUpload
from rover.services.uploads import upload_path
from rover.tests.clients import TokenClient
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]

COLLECTION = "/api/rovers/curiosity/uploads/"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def operator(user_factory):
    return user_factory(perms=("rover.add_roverimage",))


@pytest.fixture
def client(operator, token_for):
    return TokenClient(token_for(operator))


async def create(client, length: int = 100):
    return await client.post(COLLECTION, headers={**TUS, "Upload-Length": str(length)})


async def created_path(client, length: int = 100) -> str:
    response = await create(client, length)
    assert response.status_code == 201, response.content
    return "/" + response["Location"].split("/", 3)[3]


async def test_head_on_an_expired_unfinished_upload_is_410_and_discards_it(client, rover, settings):
    url = await created_path(client)
    await ImageUpload.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    response = await client.head(url, headers=TUS)
    assert response.status_code == 410
    assert "Upload-Offset" not in response
    assert response["Tus-Resumable"] == "1.0.0"
    assert not await ImageUpload.objects.aexists()
    assert await sync_to_async(media_files)(settings.MEDIA_ROOT) == []


async def test_head_on_an_upload_whose_file_is_gone_is_410(client, rover):
    url = await created_path(client)
    upload = await ImageUpload.objects.aget()
    upload_path(upload).unlink()
    response = await client.head(url, headers=TUS)
    assert response.status_code == 410
    assert "Upload-Offset" not in response


async def test_a_completed_upload_still_answers_head_after_its_expiry(client, rover):
    data = jpeg_bytes(40, 30)
    url = await created_path(client, len(data))
    done = await client.patch(
        url,
        data=data,
        content_type="application/offset+octet-stream",
        headers={**TUS, "Upload-Offset": "0"},
    )
    assert done.status_code == 204
    await ImageUpload.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    head = await client.head(url, headers=TUS)
    assert head.status_code == 200
    assert head["Upload-Offset"] == str(len(data))


async def test_open_uploads_past_the_per_user_cap_are_refused_with_429(
    client, rover, settings, user_factory, token_for
):
    settings.UPLOAD_MAX_OPEN_PER_USER = 2
    first = await created_path(client)
    await created_path(client)
    refused = await create(client)
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_uploads"
    assert refused.json()["limit"] == 2
    assert refused["Tus-Resumable"] == "1.0.0"
    assert await ImageUpload.objects.acount() == 2
    assert len(await sync_to_async(media_files)(settings.MEDIA_ROOT)) == 2

    # Another user has a cap of their own.
    other = await sync_to_async(user_factory)(perms=("rover.add_roverimage",))
    other_client = TokenClient(await sync_to_async(token_for)(other))
    assert (await create(other_client)).status_code == 201

    # A terminated upload frees its place; so does an expired one.
    assert (await client.delete(first, headers=TUS)).status_code == 204
    await created_path(client)
    assert (await create(client)).status_code == 429
    await ImageUpload.objects.exclude(user=other).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    await created_path(client)


async def test_completed_uploads_do_not_count_against_the_cap(client, rover, settings):
    settings.UPLOAD_MAX_OPEN_PER_USER = 1
    data = jpeg_bytes(40, 30)
    url = await created_path(client, len(data))
    done = await client.patch(
        url,
        data=data,
        content_type="application/offset+octet-stream",
        headers={**TUS, "Upload-Offset": "0"},
    )
    assert done.status_code == 204
    await created_path(client)
    assert (await create(client)).status_code == 429


async def test_a_cap_of_zero_means_no_cap(client, rover, settings):
    settings.UPLOAD_MAX_OPEN_PER_USER = 0
    for _ in range(3):
        await created_path(client)
