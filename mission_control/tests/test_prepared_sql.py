"""The token check (every download's access check) runs as a prepared statement on PostgreSQL.

Prepared once per connection, then `EXECUTE`: PostgreSQL no longer parses and
plans the join on every request. A server that forgot the statement (as behind a
transaction-pooling PgBouncer) still gets its answer, as a plain query.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import token_user
from mission_control import prepared_sql

pytestmark = [
    # Outside the test's own transaction: a download runs in autocommit.
    pytest.mark.django_db(transaction=True),
    pytest.mark.one_pass("services", why="prepared statements are PostgreSQL's"),
]


@pytest.fixture(autouse=True)
def preparing_again(monkeypatch):
    """Each test starts with a process that has not given up preparing."""
    monkeypatch.setattr(prepared_sql, "_given_up", False)


def statements(run) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        result = run()
    return result, [q["sql"].split()[0] for q in queries]


def test_the_token_check_is_prepared_once_then_executed(user_factory, token_for):
    user = user_factory()
    raw = token_for(user)
    connection.close()  # a fresh server session, as a new pooled connection
    found, sent = statements(lambda: token_user(raw))
    assert found == user
    assert sent[:2] == ["PREPARE", "EXECUTE"]  # then the last-use write
    for _ in range(2):
        found, sent = statements(lambda: token_user(raw))
        assert (found, sent) == (user, ["EXECUTE"])


def test_a_forgotten_statement_still_answers_with_the_plain_query(user_factory, token_for):
    user = user_factory()
    raw = token_for(user)
    assert token_user(raw) == user
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    found, sent = statements(lambda: token_user(raw))
    assert found == user
    assert sent == ["EXECUTE", "SELECT"]
    found, sent = statements(lambda: token_user(raw))
    assert (found, sent) == (user, ["SELECT"])  # this process no longer prepares
