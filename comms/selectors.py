"""Reads of the team rooms: teams, who may join, history pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Membership, Message, Team

HISTORY_LIMIT = 50
HISTORY_MAX_LIMIT = 200
# Staff holding this permission may join (and read) any room without being a member.
JOIN_ANY_ROOM_PERMISSION = "comms.view_message"


def team_get(*, slug: str) -> Team | None:
    """Return the team with this slug, or None."""
    return Team.objects.filter(slug=slug).first()


def team_is_member(*, team: Team, user: AbstractBaseUser) -> bool:
    """Return whether the user belongs to the team."""
    return Membership.objects.filter(team=team, user_id=user.pk).exists()


def team_user_can_join(*, team: Team, user: AbstractBaseUser) -> bool:
    """Return whether the user may join the room: a member, or staff allowed to read any room."""
    if not user.is_authenticated or not user.is_active:
        return False
    if team_is_member(team=team, user=user):
        return True
    return bool(user.is_staff) and user.has_perm(JOIN_ANY_ROOM_PERMISSION)


def team_user_can_post(*, team: Team, user: AbstractBaseUser) -> bool:
    """Return whether the user may post in the room: members only.

    Reading any room through JOIN_ANY_ROOM_PERMISSION (a view permission) never
    grants writing; staff who need to speak in a room join its team.
    """
    if not user.is_authenticated or not user.is_active:
        return False
    return team_is_member(team=team, user=user)


def user_teams(*, user: AbstractBaseUser) -> QuerySet[Team]:
    """Return the teams the user belongs to, by name."""
    return Team.objects.filter(memberships__user_id=user.pk).order_by("name")


def _messages(team: Team) -> QuerySet[Message]:
    return Message.objects.filter(team=team).select_related("author")


def message_history(
    *, team: Team, before: int | None = None, limit: int = HISTORY_LIMIT
) -> tuple[list[Message], bool]:
    """Return up to `limit` messages older than `before` (or the newest), oldest first.

    The flag says whether older messages remain.
    """
    limit = max(1, min(limit, HISTORY_MAX_LIMIT))
    queryset = _messages(team)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    page = list(queryset.order_by("-id")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    page.reverse()
    return page, has_more


def message_after(*, team: Team, after: int, limit: int = 500) -> list[Message]:
    """Return up to `limit` messages newer than `after`, oldest first (resume)."""
    return list(_messages(team).filter(id__gt=after).order_by("id")[:limit])
