"""handler500's mapping: database errors answer 503 + Retry-After, anything else Django's 500.

The end-to-end proof (a real PostgreSQL stopped under a real server) is
tests/test_postgres_outage.py; this checks each branch of the mapping in-process.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from mission_control.database_outage import is_database_outage, server_error


def _answer(path: str, exc: Exception):
    request = RequestFactory().get(path)
    try:
        raise exc
    except Exception:
        return server_error(request)


@pytest.mark.parametrize("exc", [OperationalError("gone"), InterfaceError("connection closed")])
def test_api_paths_answer_503_json_with_retry_after(exc):
    response = _answer("/api/teams", exc)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0


def test_pages_answer_503_text_with_retry_after():
    response = _answer("/admin/", OperationalError("gone"))
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert "Retry-After" in response


def test_other_errors_keep_djangos_500():
    response = _answer("/api/teams", ValueError("a bug"))
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_a_wrapped_database_error_counts_as_an_outage():
    try:
        try:
            raise psycopg.OperationalError("connection refused")
        except psycopg.OperationalError as inner:
            raise RuntimeError("while loading the session") from inner
    except RuntimeError as exc:
        assert is_database_outage(exc)
    assert not is_database_outage(ValueError())
