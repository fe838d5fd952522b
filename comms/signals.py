"""Close a removed member's sockets however the membership goes (admin inline, cascade, shell)."""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Membership, Team
from .services import membership_removed_notify


@receiver(post_delete, sender=Membership, dispatch_uid="comms_membership_removed")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    """Publish the control event once the deletion commits."""
    team = Team.objects.filter(pk=instance.team_id).first()
    if team is not None:
        membership_removed_notify(team=team, user_id=instance.user_id)
