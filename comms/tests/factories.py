"""factory_boy factories for teams, memberships and messages (users: accounts.tests)."""

from __future__ import annotations

import factory

from accounts.tests.factories import UserFactory
from comms.models import Membership, Message, Team


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")
    description = "A test team."


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    team = factory.SubFactory(TeamFactory)
    author = factory.SubFactory(UserFactory)
    body = factory.Sequence(lambda n: f"message {n}")
    kind = Message.Kind.CHAT
