"""factory_boy factories for users (every app's tests make their users here)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

PASSWORD = "pw-123456"


class UserFactory(factory.django.DjangoModelFactory):
    """A user with the test password; `perms=("app_label.codename", ...)` grants permissions."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def perms(self, create: bool, extracted: tuple[str, ...] | None, **kwargs: object) -> None:
        for perm in extracted or ():
            app_label, codename = perm.split(".")
            self.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
