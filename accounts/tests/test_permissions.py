"""user_has_perm: Django's answer to `has_perm`, in one query."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.permissions import user_has_perm
from accounts.tests.factories import UserFactory

PERM = "rover.add_telemetryframe"


def _fresh(user):
    """The user as a request loads it: nothing cached on the object."""
    return type(user).objects.get(pk=user.pk)


def _group_with(perm: str) -> Group:
    app_label, codename = perm.split(".")
    group = Group.objects.create(name=f"holds {perm}")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return group


@pytest.mark.parametrize(
    ("fields", "direct", "through_group", "expected"),
    [
        ({}, False, False, False),
        ({}, True, False, True),
        ({}, False, True, True),
        ({"is_active": False}, True, True, False),
        ({"is_superuser": True}, False, False, True),
        ({"is_superuser": True, "is_active": False}, False, False, False),
        ({"is_staff": True}, False, False, False),
    ],
)
def test_same_answer_as_django(db, fields, direct, through_group, expected):
    user = UserFactory(perms=(PERM,) if direct else (), **fields)
    if through_group:
        user.groups.add(_group_with(PERM))
    assert _fresh(user).has_perm(PERM) is expected
    assert user_has_perm(_fresh(user), PERM) is expected


def test_a_permission_of_another_app_with_the_same_codename_is_not_held(db):
    user = UserFactory(perms=("auth.add_user",))
    assert user_has_perm(_fresh(user), "rover.add_user") is False
    assert user_has_perm(_fresh(user), "auth.add_user") is True


def test_one_query_where_django_takes_two(db):
    user = UserFactory()
    user.groups.add(_group_with(PERM))
    with CaptureQueriesContext(connection) as django_queries:
        assert _fresh(user).has_perm(PERM)
    fresh = _fresh(user)
    with CaptureQueriesContext(connection) as our_queries:
        assert user_has_perm(fresh, PERM)
    assert len(our_queries) == 1
    assert len(django_queries) == 3  # the user's own load, then ModelBackend's two


def test_another_granting_backend_is_asked_through_django(db, settings):
    settings.AUTHENTICATION_BACKENDS = ["accounts.tests.test_permissions.GrantAll"]
    assert user_has_perm(_fresh(UserFactory()), PERM) is True


class GrantAll:
    """A backend that grants every permission (stands for any non-ModelBackend one)."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return True
