"""`first_row` builds the instance the ORM would: every field's value, converted alike."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from mission_control.sql_rows import columns_of, first_row
from rover.models import RoverImage
from rover.tests.factories import jpeg_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_media_root")]


def values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def select_one(model, pk):
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {columns_of(model, 'x')}, 42 FROM {quote(model._meta.db_table)} x"  # noqa: S608
        f" WHERE x.{quote(model._meta.pk.column)} = %s"
    )
    return first_row(model, sql, [pk])


def test_an_image_row_is_the_orms_image(store_image):
    stored = store_image(data=jpeg_bytes(80, 60))
    image, extra = select_one(RoverImage, stored.pk)
    # Datetimes, JSON, file names and the rover's id, converted as the ORM converts them
    # (SQLite returns datetimes as text, for one).
    assert values(image) == values(RoverImage.objects.get(pk=stored.pk))
    assert extra == (42,)
    assert image._state.adding is False and image._state.db == "default"
    assert image.rover == stored.rover


def test_a_user_row_is_the_orms_user(user_factory):
    user = user_factory("reader")
    found, extra = select_one(get_user_model(), user.pk)
    assert values(found) == values(get_user_model().objects.get(pk=user.pk))
    assert extra == (42,)


def test_no_row_is_none():
    assert select_one(RoverImage, 10**6) == (None, ())


def test_each_thread_converts_with_its_own_connections_methods():
    # The backend's converters are methods of a connection wrapper's `ops`; a plan
    # made in one thread and used in another would keep that thread's wrapper.
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django.db.backends.base.operations import BaseDatabaseOperations

    from mission_control.sql_rows import _plan

    def foreign_owners() -> set[int]:
        try:
            _attnames, converters = _plan(RoverImage)
            own = {id(connections["default"].ops), id(connections["default"])}
            bound = {
                id(c.__self__)
                for _, found, _ in converters
                for c in found
                if isinstance(getattr(c, "__self__", None), BaseDatabaseOperations)
            }
            return {owner for owner in bound if owner not in own}
        finally:
            connections.close_all()

    assert foreign_owners() == set()
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(foreign_owners).result() == set()
