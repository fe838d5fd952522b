"""Insert a batch of a sender's chat messages: one statement, ids in the batch's order.

The room burst stores a sender's queued messages in one transaction
(`comms.services._store_many_as_member`). On PostgreSQL the rows go in with one
`INSERT ... SELECT FROM unnest(...)` built here: `bulk_create` builds each row's
SQL values field by field, which was half of a 199-message batch's store
(profiled, README "Team rooms benchmark"). Other databases (SQLite, the embedded
default) keep `bulk_create`. Both raise `IntegrityError` on a resent client_id and
return saved `Message` instances whose ids increase in the batch's order.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from .models import Message, Team

# The rows in the batch's order (`ord`); the table and columns of `Message`
# (comms_message), checked against the model by comms/tests/test_bulk.py.
_INSERT_SQL = (
    "INSERT INTO comms_message (team_id, author_id, kind, created_at, body, client_id) "
    "SELECT %s, %s, %s, %s, item.body, item.client_id "
    "FROM unnest(%s::text[], %s::varchar[]) WITH ORDINALITY AS item(body, client_id, ord) "
    "ORDER BY item.ord RETURNING id"
)


def messages_insert(
    *, team: Team, author: AbstractBaseUser, items: list[tuple[str, str | None]]
) -> list[Message]:
    """Insert cleaned (body, client_id) pairs as the author's chat messages; return them."""
    if connection.vendor != "postgresql":
        return Message.objects.bulk_create(
            [
                Message(team=team, author=author, body=body, kind=Message.Kind.CHAT, client_id=cid)
                for body, cid in items
            ]
        )
    now = timezone.now()
    bodies = [body for body, _ in items]
    client_ids = [cid for _, cid in items]
    with connection.cursor() as cursor:
        params = [team.pk, author.pk, Message.Kind.CHAT, now, bodies, client_ids]
        cursor.execute(_INSERT_SQL, params)
        # The rows are produced in `ord` order and each takes the sequence's next value
        # as it is inserted, so the batch's ids ascend in its order; sorted, they pair
        # with the items whatever order RETURNING lists them in.
        ids = sorted(row[0] for row in cursor.fetchall())
    messages = []
    for message_id, (body, cid) in zip(ids, items, strict=True):
        message = Message(
            id=message_id,
            team=team,
            author=author,
            body=body,
            kind=Message.Kind.CHAT,
            created_at=now,
            client_id=cid,
        )
        message._state.adding = False
        message._state.db = connection.alias
        messages.append(message)
    return messages
