"""A sender's batch stored in one statement (comms.bulk): PostgreSQL's unnest and the ORM path.

Both run in each pass of `make test` (SQLite, then PostgreSQL with MC_TEST_SERVICES=1).
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.tests.factories import UserFactory
from comms.bulk import _INSERT_SQL, messages_insert
from comms.models import Message
from comms.services import _store_many_as_member
from comms.tests.factories import MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _member():
    team = TeamFactory()
    user = UserFactory()
    MembershipFactory(team=team, user=user)
    return team, user


def test_messages_insert_returns_the_stored_rows_in_the_batch_s_order():
    team, user = _member()
    Message.objects.create(team=team, author=user, body="before")
    items = [
        (f"body {n} \u00e9\U0001f680 'quoted' {{}}", f"c{n}" if n % 3 else None) for n in range(60)
    ]
    with transaction.atomic():
        stored = messages_insert(team=team, author=user, items=items)
    ids = [message.id for message in stored]
    assert ids == sorted(ids) and len(set(ids)) == len(items)
    rows = list(Message.objects.filter(id__in=ids).order_by("id"))
    assert [(m.body, m.client_id) for m in rows] == items
    assert all(m.author_id == user.pk and m.team_id == team.pk and m.kind == "chat" for m in rows)
    for returned, row in zip(stored, rows, strict=True):
        assert (returned.id, returned.body, returned.client_id) == (row.id, row.body, row.client_id)
        assert returned.created_at == row.created_at
        assert not returned._state.adding


def test_messages_insert_refuses_a_resent_client_id_and_stores_nothing_of_the_batch():
    team, user = _member()
    Message.objects.create(team=team, author=user, body="first", client_id="again")
    with pytest.raises(IntegrityError), transaction.atomic():
        messages_insert(team=team, author=user, items=[("new", "fresh"), ("resent", "again")])
    assert list(Message.objects.values_list("client_id", flat=True)) == ["again"]


def test_a_batch_with_a_resend_is_stored_one_by_one_and_answers_the_stored_message():
    team, user = _member()
    old = Message.objects.create(team=team, author=user, body="old", client_id="again")
    results, prev = _store_many_as_member(
        team=team, author=user, items=[("a", "x1"), ("resent", "again"), ("b", None)]
    )
    assert [(m.body, created) for m, created in results] == [
        ("a", True),
        ("old", False),
        ("b", True),
    ]
    assert results[1][0].id == old.id
    assert prev == old.id


def test_the_insert_statement_names_the_message_table_and_columns():
    meta = Message._meta
    columns = [
        meta.get_field(name).column for name in ("team", "author", "created_at", "client_id")
    ]
    assert f"INSERT INTO {meta.db_table} (" in _INSERT_SQL
    assert all(column in _INSERT_SQL for column in [*columns, "kind", "body"])
    assert connection.vendor in ("postgresql", "sqlite")
