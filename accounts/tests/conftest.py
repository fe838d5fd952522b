from __future__ import annotations

import pytest


@pytest.fixture
def close_thread_connections():
    """Close what sync_to_async opened on asgiref's shared thread, so PostgreSQL can drop
    the test database."""
    from asgiref.sync import SyncToAsync
    from django.db import connections

    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
