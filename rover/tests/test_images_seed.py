"""seed_demo gives a fresh install a sample image, once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from rover.models import RoverImage


@pytest.mark.usefixtures("own_media_root")
def test_seed_demo_adds_one_generated_sample_image(db):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    image = RoverImage.objects.get()
    assert image.rover.slug == "curiosity"
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 1600, 1200)
    assert image.thumbnail
