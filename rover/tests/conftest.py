"""Fixtures of the rover tests: the rover, tokens, an uploader, stored images, own MEDIA_ROOT."""

from __future__ import annotations

import io
import json

import pytest

from comms.tests.factories import TeamFactory
from rover.services.images import image_store
from rover.tests.clients import TokenClient
from rover.tests.factories import RoverFactory, jpeg_bytes


@pytest.fixture(autouse=True)
def _alarm_watchdog_off(settings):
    """Keep the link-lost watchdog out of in-process tests; the test of it turns it on."""
    settings.ALARM_WATCHDOG_SECONDS = 0


@pytest.fixture
def rover(db):
    """Curiosity, whose alarms go to the engineering team's room, with default alarm limits."""
    engineering = TeamFactory(slug="engineering", name="Engineering")
    return RoverFactory(slug="curiosity", name="Curiosity", alarm_team=engineering)


@pytest.fixture
def ingest_token(user_factory, token_for):
    """A token of the rover's uplink: it may post telemetry."""
    return token_for(user_factory("rover-uplink", perms=("rover.add_telemetryframe",)))


@pytest.fixture
def post_telemetry(client, ingest_token, django_capture_on_commit_callbacks):
    """POST frames through the ingest view as the uplink, on-commit publishes and room
    posts run; return the response."""

    def send(*frames):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/api/rovers/curiosity/telemetry",
                data=json.dumps(list(frames)),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {ingest_token}",
            )

    return send


@pytest.fixture
def viewer_token(user_factory, token_for):
    """A token of a user without any permission: it may read."""
    return token_for(user_factory("viewer"))


@pytest.fixture
def uploader_user(user_factory):
    """A user who may uplink images (multipart or tus)."""
    return user_factory(perms=("rover.add_roverimage",))


@pytest.fixture
def uploader(uploader_user, token_for):
    """An API client with a token of `uploader_user`."""
    return TokenClient(token_for(uploader_user))


@pytest.fixture
def store_image(rover):
    """Store an image of the rover through the service: `store_image(data=..., **fields)`."""

    def make(data: bytes | None = None, **fields):
        fields.setdefault("original_name", "frame.jpg")
        return image_store(rover=rover, fileobj=io.BytesIO(data or jpeg_bytes()), **fields)

    return make


@pytest.fixture
def own_media_root(settings, tmp_path):
    """Give the test its own MEDIA_ROOT, so 'nothing left behind' is checked exactly."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT
