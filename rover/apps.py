from django.apps import AppConfig


class RoverConfig(AppConfig):
    name = "rover"
    verbose_name = "Rovers, images and telemetry"
