"""Create the demo rover, teams and operator (idempotent)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from comms.models import Membership, Team
from rover.models import AlarmLimits, Rover

DEMO_PASSWORD = "mission-control"  # noqa: S105 - the documented demo login
TEAMS = [
    ("engineering", "Engineering", "Power, thermal and mobility engineers."),
    ("science", "Science", "Instrument teams and science planning."),
    ("navigation", "Navigation", "Drive planning and localisation."),
]
# What an operator may do through the API: upload images, post telemetry, ack alarms.
OPERATOR_PERMISSIONS = [
    ("rover", "add_roverimage"),
    ("rover", "add_telemetryframe"),
    ("rover", "change_alarm"),
]


class Command(BaseCommand):
    help = "Create the demo rover 'curiosity', three teams and the user 'operator'."

    @transaction.atomic
    def handle(self, *args, **options):
        teams = []
        for slug, name, description in TEAMS:
            team, _ = Team.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description}
            )
            teams.append(team)
        rover, _ = Rover.objects.get_or_create(
            slug="curiosity",
            defaults={"name": "Curiosity", "description": "Demo rover in Gale crater."},
        )
        if rover.alarm_team_id is None:
            rover.alarm_team = teams[0]
            rover.save(update_fields=["alarm_team"])
        AlarmLimits.objects.get_or_create(rover=rover)

        operators, _ = Group.objects.get_or_create(name="operators")
        operators.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="rover",
                codename__in=[codename for _, codename in OPERATOR_PERMISSIONS],
            )
        )
        User = get_user_model()
        operator, created = User.objects.get_or_create(
            username="operator", defaults={"email": "operator@example.org", "is_staff": True}
        )
        if created:
            operator.set_password(DEMO_PASSWORD)
            operator.save()
        operator.groups.add(operators)
        for team in teams:
            Membership.objects.get_or_create(
                team=team, user=operator, defaults={"role": Membership.Role.LEAD}
            )
        self.stdout.write(
            f"Demo data ready: rover 'curiosity', teams {', '.join(t.slug for t in teams)}, "
            f"user 'operator' (password '{DEMO_PASSWORD}')."
        )
