"""Rover models, one module per concern."""

from .alarms import Alarm, AlarmKind, AlarmLimits
from .images import Camera, ImageUpload, RoverImage
from .rollups import ROLLUP_FIELDS, TelemetryRollup
from .rovers import Rover
from .telemetry import RoverMode, TelemetryFrame

__all__ = [
    "ROLLUP_FIELDS",
    "Alarm",
    "AlarmKind",
    "AlarmLimits",
    "Camera",
    "ImageUpload",
    "Rover",
    "RoverImage",
    "RoverMode",
    "TelemetryFrame",
    "TelemetryRollup",
]
