"""The idempotent uplink under concurrency: two uplinks of the same bytes store one image.

Both racers are held after their "already stored?" look-up and before their insert,
so each finds nothing and both insert: only the database can keep the second row out.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from rover.models import RoverImage
from rover.services import images as image_service
from rover.services.images import image_store, image_store_once, uploads_dir
from rover.tests.factories import jpeg_bytes
from rover.tests.media import media_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("own_media_root")]


@pytest.fixture
def racers_meet_before_inserting(monkeypatch):
    """Hold each racer after its look-up until both have looked (the thumbnail comes between)."""
    barrier = threading.Barrier(2, timeout=20)
    thumbnail = image_service._thumbnail_bytes

    def meet_then_thumbnail(path: Path) -> bytes:
        barrier.wait()
        return thumbnail(path)

    monkeypatch.setattr(image_service, "_thumbnail_bytes", meet_then_thumbnail)


def race(store_one) -> list[tuple[RoverImage, bool]]:
    """Run `store_one(i)` in two threads (each its own connection); return their results."""
    results: list[tuple[RoverImage, bool]] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results.append(store_one(i))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.usefixtures("racers_meet_before_inserting")
def test_two_concurrent_uplinks_of_the_same_bytes_store_one_image(rover, own_media_root):
    data = jpeg_bytes(seed=7)

    results = race(
        lambda i: image_store_once(rover=rover, fileobj=io.BytesIO(data), original_name=f"{i}.jpg")
    )

    assert RoverImage.objects.filter(rover=rover).count() == 1
    stored = RoverImage.objects.get(rover=rover)
    assert {image.pk for image, _created in results} == {stored.pk}
    assert sorted(created for _image, created in results) == [False, True]
    # The loser's copy and thumbnail are gone: only the winner's two files remain.
    assert media_files(own_media_root) == sorted([stored.file.name, stored.thumbnail.name])


@pytest.mark.usefixtures("racers_meet_before_inserting")
def test_the_losing_finished_upload_keeps_its_file_and_gets_the_winners_image(rover):
    """A tus completion that loses is handed the stored image; its file is back in place."""
    data = jpeg_bytes(seed=8)
    sources = [uploads_dir() / f"finished-{i}" for i in range(2)]
    for source in sources:
        source.write_bytes(data)

    results = race(lambda i: image_store_once(rover=rover, path=sources[i]))

    stored = RoverImage.objects.get(rover=rover)
    assert {image.pk for image, _created in results} == {stored.pk}
    # The winner's file was moved into place; the loser's is where it was, untouched.
    assert [source.exists() for source in sources].count(True) == 1
    assert next(s for s in sources if s.exists()).read_bytes() == data
    assert Path(stored.file.path).read_bytes() == data


def test_the_admin_and_the_seed_may_still_store_the_same_bytes_twice(rover):
    """image_store is not the uplink: an operator may store one picture twice on purpose."""
    data = jpeg_bytes(seed=9)
    first = image_store(rover=rover, fileobj=io.BytesIO(data))
    second = image_store(rover=rover, fileobj=io.BytesIO(data))
    assert first.pk != second.pk
    again, created = image_store_once(rover=rover, fileobj=io.BytesIO(data))
    assert (again.pk, created) == (first.pk, False)


def test_the_migration_keeps_duplicates_already_stored_and_the_uplink_answers_the_oldest():
    """Rows stored twice before the constraint stay; a resend of their bytes gets the first."""
    before = [("rover", "0005_partition_telemetry_frames")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    old_rover = old_apps.get_model("rover", "Rover").objects.create(slug="spirit", name="Spirit")
    old_image = old_apps.get_model("rover", "RoverImage")
    data = jpeg_bytes(seed=10)
    sha256 = hashlib.sha256(data).hexdigest()
    fields = {"size": len(data), "sha256": sha256, "content_type": "image/jpeg"}
    duplicates = [
        old_image.objects.create(
            rover=old_rover,
            captured_at=timezone.now(),
            file=f"rover-images/{n}.jpg",
            width=64,
            height=48,
            **fields,
        ).pk
        for n in range(2)
    ]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    stored = RoverImage.objects.filter(rover__slug="spirit").order_by("pk")
    assert [(image.pk, image.uplinked) for image in stored] == [(pk, False) for pk in duplicates]
    again, created = image_store_once(rover=stored[0].rover, fileobj=io.BytesIO(data))
    assert (again.pk, created) == (duplicates[0], False)
