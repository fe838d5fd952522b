"""Read rovers."""

from __future__ import annotations

from rover.models import Rover


def rover_get(*, slug: str) -> Rover | None:
    """Return the rover with this slug, or None."""
    return Rover.objects.filter(slug=slug).first()


def rover_choices() -> list[dict[str, str]]:
    """Return every rover as `{"slug", "name"}`, by name (the rover picker)."""
    return [
        {"slug": slug, "name": name} for slug, name in Rover.objects.values_list("slug", "name")
    ]
