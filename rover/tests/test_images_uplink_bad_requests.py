"""Bad requests to the multipart uplink: every one answers JSON 4xx and stores nothing."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from rover.models import RoverImage
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]

URL = "/api/rovers/curiosity/images"


def part(boundary: str, name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def form(boundary: str, *parts: bytes) -> bytes:
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


WHOLE = form("XyZ", part("XyZ", "file", jpeg_bytes(80, 60), "shot.jpg"))
MULTIPART = "multipart/form-data; boundary=XyZ"

CASES = {
    "no_boundary": ("multipart/form-data", WHOLE, "malformed_multipart"),
    "empty_boundary": ("multipart/form-data; boundary=", WHOLE, "malformed_multipart"),
    "invalid_boundary": ("multipart/form-data; boundary=\x7fbad", WHOLE, "malformed_multipart"),
    "wrong_boundary": ("multipart/form-data; boundary=Other", WHOLE, "file_missing"),
    "truncated_in_file": (MULTIPART, WHOLE[: len(WHOLE) // 2], "file_missing"),
    "truncated_in_headers": (MULTIPART, WHOLE[:40], "file_missing"),
    "no_closing_boundary": (MULTIPART, WHOLE[: -len("--XyZ--\r\n")], "file_missing"),
    "garbage": (MULTIPART, b"\x00\xff" * 500, "file_missing"),
    "empty_body": (MULTIPART, b"", "file_missing"),
    "not_multipart": ("application/json", b'{"file": "x"}', "file_missing"),
    "too_many_files": (
        MULTIPART,
        form("XyZ", *(part("XyZ", f"f{i}", b"x", f"{i}.jpg") for i in range(101))),
        "too_many_fields",
    ),
    "too_many_fields": (
        MULTIPART,
        form("XyZ", *(part("XyZ", f"k{i}", b"v") for i in range(1001))),
        "too_many_fields",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_multipart_is_json_4xx_and_stores_nothing(uploader, rover, settings, case):
    content_type, payload, code = CASES[case]
    response = await uploader.generic("POST", URL, payload, content_type=content_type)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == code
    assert not await RoverImage.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == []


async def test_form_fields_past_the_memory_limit_are_413_json(uploader, rover, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    payload = form(
        "XyZ", part("XyZ", "camera", b"n" * 2000), part("XyZ", "file", jpeg_bytes(), "a.jpg")
    )
    response = await uploader.generic("POST", URL, payload, content_type=MULTIPART)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert not await RoverImage.objects.aexists()
    assert media_files(settings.MEDIA_ROOT) == []


@pytest.mark.parametrize("case", ["no_boundary", "invalid_boundary"])
async def test_a_session_upload_that_fails_in_the_csrf_check_is_json_too(
    user_factory, rover, settings, case
):
    """The CSRF check reads request.POST before the view: handler400 must answer JSON."""
    user = await sync_to_async(user_factory)(perms=("rover.add_roverimage",))
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    client.cookies["csrftoken"] = "a" * 32
    content_type, payload, code = CASES[case]
    response = await client.generic(
        "POST", URL, payload, content_type=content_type, headers={"X-CSRFToken": "a" * 32}
    )
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert not await RoverImage.objects.aexists()


async def test_a_malformed_body_on_a_session_page_keeps_the_html_400(db):
    client = AsyncClient()
    client.cookies["csrftoken"] = "a" * 32
    response = await client.generic(
        "POST",
        "/accounts/login/",
        WHOLE,
        content_type="multipart/form-data",
        headers={"X-CSRFToken": "a" * 32},
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_the_image_collection_answers_other_methods_405_json(uploader, rover, method):
    response = await uploader.generic(method, URL, WHOLE, content_type=MULTIPART)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD, POST"
