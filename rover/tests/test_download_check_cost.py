"""The access check before an X-Accel-Redirect download: one plain query, nothing compiled.

nginx sends the bytes once the worker has answered, so the worker's time per
download is the time to the first byte (bench/scaleout.py --only downloads).
Compiling the token and image lookups through the ORM cost more than running
them; they are written as SQL, in one query (the view checks the token itself:
rover/tests/test_images_token_check.py), and these tests keep it that way.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import pytest
from django.db.backends.utils import CursorWrapper
from django.db.models.sql.compiler import SQLCompiler
from django.test import Client

from accounts.models import ApiToken
from rover.selectors.images import image_get
from rover.tests.factories import jpeg_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_media_root")]


@contextmanager
def counting():
    """Count ORM compilations and executed statements, in every thread."""
    counts = {"compiled": 0, "queries": 0}
    compile_sql, execute = SQLCompiler.as_sql, CursorWrapper._execute

    def counted_compile(self, *args, **kwargs):
        counts["compiled"] += 1
        return compile_sql(self, *args, **kwargs)

    def counted_execute(self, *args, **kwargs):
        counts["queries"] += 1
        return execute(self, *args, **kwargs)

    with (
        mock.patch.object(SQLCompiler, "as_sql", counted_compile),
        mock.patch.object(CursorWrapper, "_execute", counted_execute),
    ):
        yield counts


@pytest.fixture
def download(settings, store_image, user_factory, token_for):
    """Return a function that downloads one stored image with a reader's token."""
    settings.IMAGE_ACCEL_REDIRECT = True
    image = store_image(data=jpeg_bytes(80, 60))
    raw = token_for(user_factory("reader"))
    client = Client(headers={"Authorization": f"Bearer {raw}"})

    def get(**headers):
        return client.get(f"/api/images/{image.pk}/download", headers=headers)

    return get


def test_an_x_accel_download_runs_one_query_and_compiles_none(download):
    download()  # the token's first use writes last_used_at (once a minute)
    with counting() as counts:
        response = download()
    assert response.status_code == 200
    assert response["X-Accel-Redirect"].startswith("/_accel/full/rover-images/")
    assert counts == {"compiled": 0, "queries": 1}


def test_a_revoked_token_is_refused_on_the_next_download(download):
    assert download().status_code == 200
    ApiToken.objects.update(revoked_at="2026-01-01T00:00:00Z")
    response = download()
    assert response.status_code == 401
    assert "X-Accel-Redirect" not in response


def test_a_304_still_needs_the_same_one_query_and_no_compilation(download):
    etag = download()["ETag"]
    with counting() as counts:
        response = download(**{"If-None-Match": etag})
    assert response.status_code == 304
    assert counts == {"compiled": 0, "queries": 1}


@pytest.mark.parametrize("image_id", [0, -1, 2**63, 10**30])
def test_image_get_answers_none_for_ids_no_row_can_have(image_id):
    assert image_get(image_id=image_id) is None


def test_image_get_loads_the_rover_when_asked(store_image, rover):
    stored = store_image(data=jpeg_bytes(8, 8))
    image = image_get(image_id=stored.pk)
    assert (image.sha256, image.received_at, image.file.name) == (
        stored.sha256,
        stored.received_at,
        stored.file.name,
    )
    assert image.rover == rover


@pytest.mark.parametrize("thumbnail", [False, True])
def test_an_image_without_an_original_name_downloads_under_the_rovers_slug(
    store_image, rover, user_factory, token_for, thumbnail
):
    # The async view names the file from the rover's slug; a lazy load there is an
    # ORM query in the event loop (SynchronousOnlyOperation, a 500).
    image = store_image(data=jpeg_bytes(80, 60), original_name="")
    client = Client(headers={"Authorization": f"Bearer {token_for(user_factory('reader'))}"})
    path = "thumbnail" if thumbnail else "download"
    response = client.get(f"/api/images/{image.pk}/{path}")
    assert response.status_code == 200, response.content[:300]
    suffix = "-thumbnail.jpg" if thumbnail else ".jpg"
    assert f'{rover.slug}-{image.pk}{suffix}"' in response["Content-Disposition"]
