"""Camera names in any case (`NAVCAM`, as NASA writes them): multipart, tus and the list filter."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import sync_to_async

from rover.models import Camera, RoverImage
from rover.tests.factories import jpeg_bytes
from rover.tests.tus import metadata, upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("own_media_root"),
]

IMAGES = "/api/rovers/curiosity/images"


def multipart(data: bytes, **fields: str) -> dict:
    upload = io.BytesIO(data)
    upload.name = "shot.jpg"
    return {"file": upload, **fields}


@pytest.mark.parametrize("given", ["NAVCAM", "Hazcam_Front", " MastCam "])
async def test_multipart_upload_takes_a_camera_in_any_case(uploader, rover, given):
    response = await uploader.post(IMAGES, multipart(jpeg_bytes(), camera=given))
    assert response.status_code == 201, response.content
    assert response.json()["camera"] == given.strip().lower()
    assert (await RoverImage.objects.aget()).camera == given.strip().lower()


async def test_unknown_camera_names_the_parameter_and_stores_nothing(uploader, rover):
    response = await uploader.post(IMAGES, multipart(jpeg_bytes(), camera="SELFIE"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_camera"
    assert response.json()["parameter"] == "camera"
    assert not await RoverImage.objects.aexists()


async def test_tus_upload_takes_a_camera_in_any_case(uploader, rover):
    _url, done = await upload(uploader, jpeg_bytes(160, 120), metadata(camera="CHEMCAM"))
    assert done.status_code == 204, done.content
    assert (await RoverImage.objects.aget()).camera == Camera.CHEMCAM


async def test_image_list_filters_by_camera_in_any_case(uploader, store_image):
    navcam = await sync_to_async(store_image)(camera=Camera.NAVCAM)
    await sync_to_async(store_image)(camera=Camera.MASTCAM)
    page = (await uploader.get(f"{IMAGES}?camera=NAVCAM&limit=1")).json()
    assert [item["id"] for item in page["results"]] == [navcam.pk]
    assert page["count"] == 1
    assert page["next"] is None
    everything = (await uploader.get(IMAGES)).json()
    assert everything["count"] == 2
    refused = await uploader.get(f"{IMAGES}?camera=toaster")
    assert refused.status_code == 400
    assert refused.json()["parameter"] == "camera"
