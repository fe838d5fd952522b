"""Create the demo rover, teams, operator and administrator (idempotent)."""

from __future__ import annotations

import io
import random

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from PIL import Image, ImageDraw, ImageFilter

from comms.models import Membership, Team
from rover.models import AlarmLimits, Camera, Rover
from rover.services.images import image_store

DEMO_PASSWORD = "mission-control"  # noqa: S105 - the documented demo login
# The demo's administrator (superuser) for running the mission from the admin: rovers'
# limits, teams and their members. A known password, so only with DEBUG on (`make run`);
# production settings refuse DEBUG, and there `createsuperuser` makes the administrator.
DEMO_ADMIN = "admin"
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
    help = (
        "Create the demo rover 'curiosity', three teams, the user 'operator' and the "
        "administrator 'admin' (both with the demo password)."
    )

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
        if settings.DEBUG:
            admin, created = User.objects.get_or_create(
                username=DEMO_ADMIN,
                defaults={"email": "admin@example.org", "is_staff": True, "is_superuser": True},
            )
            if created:
                admin.set_password(DEMO_PASSWORD)
                admin.save()
        for team in teams:
            Membership.objects.get_or_create(
                team=team, user=operator, defaults={"role": Membership.Role.LEAD}
            )
        if not rover.images.exists():
            image_store(
                rover=rover,
                fileobj=io.BytesIO(mars_scene_jpeg()),
                camera=Camera.MASTCAM,
                user=operator,
                original_name="gale-crater-sample.jpg",
            )
            self.stdout.write("Added a generated sample image to the rover's image feed.")
        logins = (
            f"user 'operator' and administrator '{DEMO_ADMIN}'"
            if settings.DEBUG
            else "user 'operator'"
        )
        self.stdout.write(
            f"Demo data ready: rover 'curiosity', teams {', '.join(t.slug for t in teams)}, "
            f"{logins} (password '{DEMO_PASSWORD}')."
        )
        if not settings.DEBUG:
            self.stdout.write(
                "No demo administrator with DEBUG off: make one with 'manage.py createsuperuser'."
            )


def mars_scene_jpeg(width: int = 1600, height: int = 1200, *, seed: int = 2012) -> bytes:
    """Draw a Mars-like landscape (butterscotch sky, dunes, rocks) and return it as JPEG."""
    rng = random.Random(seed)
    horizon = int(height * 0.45)
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(horizon):
        t = y / horizon
        draw.line(
            [(0, y), (width, y)], fill=(int(200 + 30 * t), int(150 + 25 * t), int(110 + 10 * t))
        )
    for y in range(horizon, height):
        t = (y - horizon) / (height - horizon)
        draw.line(
            [(0, y), (width, y)], fill=(int(170 - 60 * t), int(85 - 40 * t), int(45 - 20 * t))
        )
    # Crater rim and distant ridges.
    for layer, shade in ((0, (150, 95, 70)), (1, (135, 80, 55))):
        points = [(0, horizon)]
        for x in range(0, width + 80, 80):
            points.append((x, horizon - rng.randint(20, 90) + layer * 35))
        points.append((width, horizon + 40))
        draw.polygon([*points, (width, horizon + 60), (0, horizon + 60)], fill=shade)
    # Dunes.
    for _ in range(6):
        cx, cy = rng.randint(0, width), rng.randint(horizon + 60, height)
        draw.ellipse([cx - 400, cy - 40, cx + 400, cy + 40], fill=(rng.randint(150, 185), 80, 45))
    img = img.filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(img)
    # Rocks with shadows, bigger when nearer.
    for _ in range(140):
        y = rng.randint(horizon + 40, height)
        size = 3 + (y - horizon) / (height - horizon) * rng.uniform(6, 45)
        x = rng.randint(0, width)
        draw.ellipse(
            [x - size, y - size * 0.25, x + size * 1.6, y + size * 0.45], fill=(50, 28, 18)
        )
        grey = rng.randint(70, 120)
        draw.ellipse(
            [x - size, y - size * 0.7, x + size, y + size * 0.3], fill=(grey + 40, grey, grey - 30)
        )
    # A small, pale sun.
    draw.ellipse(
        [width * 0.78, height * 0.08, width * 0.78 + 34, height * 0.08 + 34], fill=(245, 235, 215)
    )
    out = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(0.8)).save(out, format="JPEG", quality=88)
    return out.getvalue()
