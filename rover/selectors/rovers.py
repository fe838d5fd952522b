"""Read rovers."""

from __future__ import annotations

from rover.models import Rover


def rover_get(*, slug: str) -> Rover | None:
    """Return the rover with this slug, or None."""
    return Rover.objects.filter(slug=slug).first()


def rover_choices() -> list[dict[str, object]]:
    """Return every rover by name, as the rover picker needs it.

    `{"slug", "name", "stale_after_seconds", "landing_date"}`: the dashboard measures
    staleness with the rover's own limit and shows sols from its landing date.
    """
    rows = Rover.objects.values_list("slug", "name", "stale_after_seconds", "landing_date")
    return [
        {
            "slug": slug,
            "name": name,
            "stale_after_seconds": stale_after,
            "landing_date": landing.isoformat() if landing else None,
        }
        for slug, name, stale_after, landing in rows
    ]
