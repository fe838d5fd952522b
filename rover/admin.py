from __future__ import annotations

from django.contrib import admin

from .models import Alarm, AlarmLimits, Rover, TelemetryFrame


class AlarmLimitsInline(admin.StackedInline):
    model = AlarmLimits
    can_delete = False


@admin.register(Rover)
class RoverAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "alarm_team", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [AlarmLimitsInline]


# --- telemetry and alarms ---


@admin.register(TelemetryFrame)
class TelemetryFrameAdmin(admin.ModelAdmin):
    """Frames are the rover's record: listed and filtered, never edited by hand."""

    list_display = [
        "rover",
        "seq",
        "recorded_at",
        "received_at",
        "mode",
        "battery_pct",
        "signal_dbm",
        "temp_internal_c",
        "speed_mps",
    ]
    list_filter = ["rover", "mode", ("recorded_at", admin.DateFieldListFilter)]
    search_fields = ["=seq"]
    date_hierarchy = "recorded_at"
    ordering = ["-recorded_at", "-seq"]
    list_select_related = ["rover"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = [
        "rover",
        "kind",
        "message",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "acknowledged_at",
    ]
    list_filter = [
        "rover",
        "kind",
        ("cleared_at", admin.EmptyFieldListFilter),
        ("acknowledged_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["message"]
    date_hierarchy = "raised_at"
    list_select_related = ["rover", "acknowledged_by"]
    readonly_fields = [
        "rover",
        "kind",
        "message",
        "value",
        "seq",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "acknowledged_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False
