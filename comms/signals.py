"""Tell the room about membership changes however they happen (admin inline, cascade, shell).

A removed member's open sockets close (4403) on every worker; the others hear of it.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Membership, Team
from .services import membership_added_notify, membership_removed_notify


def _username(user_id: int) -> str:
    User = get_user_model()
    user = User.objects.filter(pk=user_id).first()
    return user.get_username() if user is not None else ""


@receiver(post_delete, sender=Membership, dispatch_uid="comms_membership_removed")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    """Publish the control event once the deletion commits."""
    team = Team.objects.filter(pk=instance.team_id).first()
    if team is not None:
        membership_removed_notify(
            team=team, user_id=instance.user_id, username=_username(instance.user_id)
        )


@receiver(post_save, sender=Membership, dispatch_uid="comms_membership_added")
def membership_saved(sender, instance: Membership, created: bool, **kwargs) -> None:
    """Announce a new member to the room once the insert commits."""
    if created:
        membership_added_notify(
            team=instance.team, user_id=instance.user_id, username=_username(instance.user_id)
        )
