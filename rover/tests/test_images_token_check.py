"""A download checks its bearer token in the image's own query, and refuses exactly as before.

The middleware leaves a download's token to the view (`checks_token_itself`):
one round trip to the database instead of two (counted in
rover/tests/test_download_check_cost.py). Every refusal must stay what
the middleware answered: 401 `invalid_token` for a bad, revoked or inactive
owner's token, whatever else the request carries (a session of another user)
and whether or not the image exists; writes are still checked by the middleware.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services import token_create, token_revoke
from rover.tests.factories import jpeg_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_media_root")]

KINDS = ["download", "thumbnail"]
TOO_BIG = 2**63  # beyond the id column's range


@pytest.fixture
def image(store_image):
    return store_image(data=jpeg_bytes(300, 200), original_name="dune.jpg")


def get(path: str, token: str | None = None, client: Client | None = None, **extra):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return (client or Client()).get(path, headers=headers, **extra)


def assert_invalid_token(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_token_is_401_even_for_an_image_that_does_not_exist(kind, image, db):
    for image_id in (image.pk, image.pk + 1000, TOO_BIG):
        assert_invalid_token(get(f"/api/images/{image_id}/{kind}", "mc_not-a-token"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_token_and_no_such_image_is_404(kind, image, user_factory, token_for):
    token = token_for(user_factory())
    for image_id in (image.pk + 1000, TOO_BIG):
        response = get(f"/api/images/{image_id}/{kind}", token)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_revoked_and_inactive_owners_tokens_are_401(image, user_factory):
    token, revoked = token_create(user=user_factory())
    token_revoke(token=token)
    inactive = token_create(user=user_factory(is_active=False))[1]
    for token in (revoked, inactive):
        assert_invalid_token(get(f"/api/images/{image.pk}/download", token))


def test_a_bad_token_is_401_even_beside_a_good_session(image, user_factory):
    client = Client()
    client.force_login(user_factory())
    assert get(f"/api/images/{image.pk}/download", client=client).status_code == 200
    assert_invalid_token(get(f"/api/images/{image.pk}/download", "mc_nope", client=client))


def test_range_and_conditionals_still_apply_with_the_token_checked_by_the_view(
    image, user_factory, token_for
):
    token = token_for(user_factory())
    path = f"/api/images/{image.pk}/download"
    whole = get(path, token)
    ranged = get(path, token, HTTP_RANGE="bytes=0-9")
    assert ranged.status_code == 206
    assert ranged["Content-Range"].startswith("bytes 0-9/")
    assert get(path, token, HTTP_IF_NONE_MATCH=whole["ETag"]).status_code == 304
    assert get(path, token, HTTP_RANGE="bytes=999999999-").status_code == 416


def test_a_write_to_a_download_is_still_checked_by_the_middleware(image, user_factory, token_for):
    path = f"/api/images/{image.pk}/download"
    assert_invalid_token(Client().post(path, headers={"Authorization": "Bearer mc_nope"}))
    token = token_for(user_factory())
    assert Client().post(path, headers={"Authorization": f"Bearer {token}"}).status_code == 405
