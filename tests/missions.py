"""The rovers, team room and API tokens the cross-worker Redis tests start from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comms.models import Team
    from rover.models import Rover


@dataclass
class Mission:
    rovers: list[Rover]
    team: Team
    ingest_token: str
    member_tokens: list[str]

    @property
    def rover(self) -> Rover:
        return self.rovers[0]


def mission_create(
    user_factory: Callable[..., Any],
    token_for: Callable[[Any], str],
    *,
    members: int,
    rovers: Sequence[str] = ("curiosity",),
    team: str = "ops",
) -> Mission:
    """Create rovers with default alarm limits, a team room of `members` users
    (member0, member1, ...) and an uplink user; return them with the users' tokens."""
    from comms.models import Membership, Team
    from rover.models import AlarmLimits, Rover

    created = [Rover.objects.create(slug=slug, name=slug.capitalize()) for slug in rovers]
    for rover in created:
        AlarmLimits.objects.create(rover=rover)
    room = Team.objects.create(slug=team, name="Ops")
    users = [user_factory(f"member{i}") for i in range(members)]
    for user in users:
        Membership.objects.create(team=room, user=user)
    uplink = user_factory("uplink", perms=("rover.add_telemetryframe",))
    return Mission(
        rovers=created,
        team=room,
        ingest_token=token_for(uplink),
        member_tokens=[token_for(user) for user in users],
    )
