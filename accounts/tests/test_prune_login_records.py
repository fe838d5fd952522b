"""prune_login_records bounds django-axes' tables: old access logs go, live locks stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt, AccessLog
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(user_factory, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return user_factory("operator", is_staff=True)


def login(password: str, address: str = "127.0.0.1"):
    return Client().post(
        "/accounts/login/",
        {"username": "operator", "password": password},
        REMOTE_ADDR=address,
    )


def age(rows, **delta) -> None:
    rows.update(attempt_time=timezone.now() - timedelta(**delta))


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_login_records", *args, stdout=out)
    return out.getvalue()


def test_access_logs_older_than_the_retention_are_deleted_and_newer_kept(operator, settings):
    settings.LOGIN_LOG_RETENTION_DAYS = 30
    for _ in range(3):
        assert login("pw-123456").status_code == 302
    assert AccessLog.objects.count() == 3
    old = AccessLog.objects.order_by("pk")[:2].values_list("pk", flat=True)
    age(AccessLog.objects.filter(pk__in=list(old)), days=31)

    assert prune("--dry-run").startswith("Would delete 2 login access log(s)")
    assert AccessLog.objects.count() == 3
    assert prune().startswith("Deleted 2 login access log(s) older than 30 day(s)")
    assert AccessLog.objects.count() == 1
    assert prune("--days", "1").startswith("Deleted 0 ")


def test_a_locked_address_stays_locked_and_cooled_off_counts_are_deleted(operator):
    for _ in range(3):
        login("wrong", "10.0.0.1")
    login("wrong", "10.0.0.2")
    age(AccessAttempt.objects.filter(ip_address="10.0.0.2"), minutes=16)

    assert "and 1 cooled-off failed-login count(s)" in prune()
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["10.0.0.1"]
    assert login("pw-123456", "10.0.0.1").status_code == 429


def test_a_retention_under_one_day_is_refused(operator):
    with pytest.raises(CommandError, match="at least 1"):
        prune("--days", "0")
