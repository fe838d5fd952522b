"""`manage.py prune_uploads`: expired uploads and orphaned upload files go, nothing else."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from rover.models import ImageUpload
from rover.services.images import uploads_dir
from rover.services.uploads import upload_create, upload_path
from rover.tests.media import media_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_media_root")]

DAY_AND_A_BIT = 25 * 3600


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_uploads", *args, stdout=out)
    return out.getvalue()


def aged(path, seconds: float):
    path.write_bytes(b"partial")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


@pytest.fixture
def scene(rover, user_factory):
    """An expired upload, a live one, an old orphan, a young orphan."""
    user = user_factory()
    # Created first: creating an upload also prunes the expired ones.
    live = upload_create(rover=rover, user=user, length=100, metadata={})
    expired = upload_create(rover=rover, user=user, length=100, metadata={})
    ImageUpload.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # An old upload file whose row is still live must survive however old it is.
    aged(upload_path(live), DAY_AND_A_BIT)
    old_orphan = aged(uploads_dir() / "incoming-0123abcd", DAY_AND_A_BIT)
    young_orphan = aged(uploads_dir() / "incoming-4567ef01", 60)
    return expired, live, old_orphan, young_orphan


def test_prune_uploads_deletes_expired_uploads_and_old_orphans_only(scene, settings):
    _expired, live, old_orphan, young_orphan = scene
    assert "Deleted 1 expired upload(s) and 1 orphaned upload file(s)" in prune()
    assert list(ImageUpload.objects.values_list("pk", flat=True)) == [live.pk]
    assert media_files(settings.MEDIA_ROOT) == sorted(
        [f"uploads/{live.pk}", f"uploads/{young_orphan.name}"]
    )
    assert not old_orphan.exists()
    assert "Deleted 0 expired upload(s) and 0 orphaned" in prune()


def test_prune_uploads_dry_run_counts_and_deletes_nothing(scene, settings):
    before = media_files(settings.MEDIA_ROOT)
    assert "Would delete 1 expired upload(s) and 1 orphaned upload file(s)" in prune("--dry-run")
    assert ImageUpload.objects.count() == 2
    assert media_files(settings.MEDIA_ROOT) == before
