from django.apps import AppConfig


class CommsConfig(AppConfig):
    name = "comms"
    verbose_name = "Team rooms"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the membership signal
