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
from rover.tests.tus import TUS, create, created_path, upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]


async def completed_path(client, data: bytes) -> str:
    """Create an upload of `data`, send all of it in one PATCH, and return the upload's path."""
    url, done = await upload(client, data)
    assert done.status_code == 204, done.content
    return url


async def test_head_on_an_expired_unfinished_upload_is_410_and_discards_it(
    uploader, rover, settings
):
    url = await created_path(uploader)
    await ImageUpload.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    response = await uploader.head(url, headers=TUS)
    assert response.status_code == 410
    assert "Upload-Offset" not in response
    assert response["Tus-Resumable"] == "1.0.0"
    assert not await ImageUpload.objects.aexists()
    assert await sync_to_async(media_files)(settings.MEDIA_ROOT) == []


async def test_head_on_an_upload_whose_file_is_gone_is_410(uploader, rover):
    url = await created_path(uploader)
    upload = await ImageUpload.objects.aget()
    upload_path(upload).unlink()
    response = await uploader.head(url, headers=TUS)
    assert response.status_code == 410
    assert "Upload-Offset" not in response


async def test_a_completed_upload_still_answers_head_after_its_expiry(uploader, rover):
    data = jpeg_bytes(40, 30)
    url = await completed_path(uploader, data)
    await ImageUpload.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    head = await uploader.head(url, headers=TUS)
    assert head.status_code == 200
    assert head["Upload-Offset"] == str(len(data))


async def test_open_uploads_past_the_per_user_cap_are_refused_with_429(
    uploader, rover, settings, user_factory, token_for
):
    settings.UPLOAD_MAX_OPEN_PER_USER = 2
    first = await created_path(uploader)
    await created_path(uploader)
    refused = await create(uploader)
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
    assert (await uploader.delete(first, headers=TUS)).status_code == 204
    await created_path(uploader)
    assert (await create(uploader)).status_code == 429
    await ImageUpload.objects.exclude(user=other).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    await created_path(uploader)


async def test_completed_uploads_do_not_count_against_the_cap(uploader, rover, settings):
    settings.UPLOAD_MAX_OPEN_PER_USER = 1
    await completed_path(uploader, jpeg_bytes(40, 30))
    await created_path(uploader)
    assert (await create(uploader)).status_code == 429


async def test_a_cap_of_zero_means_no_cap(uploader, rover, settings):
    settings.UPLOAD_MAX_OPEN_PER_USER = 0
    for _ in range(3):
        await created_path(uploader)
