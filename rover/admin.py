from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils.html import format_html

from .models import Alarm, AlarmLimits, Camera, Rover, RoverImage, TelemetryFrame
from .services.alarms import alarm_acknowledge
from .services.images import ImageRejected, image_delete, image_store


def utc_seconds(value: datetime | None) -> str:
    """Return a time as "YYYY-MM-DD HH:MM:SS UTC" (the dashboard's form), "-" when unset."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


class AlarmLimitsInline(admin.StackedInline):
    model = AlarmLimits
    can_delete = False


@admin.register(Rover)
class RoverAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "last_frame",
        "active_alarms",
        "stale_after_seconds",
        "alarm_team",
    ]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    fields = ["name", "slug", "description", "alarm_team", "landing_date", "stale_after_seconds"]
    inlines = [AlarmLimitsInline]

    def get_queryset(self, request) -> QuerySet[Rover]:
        # Subqueries, not joins: a join to frames and alarms would multiply the counts.
        # The last frame received (highest ingest id), not the highest seq: one bogus
        # seq would otherwise show the rover's link as silent since that frame.
        newest = TelemetryFrame.objects.filter(rover=OuterRef("pk")).order_by("-ingest_id")
        active = (
            Alarm.objects.filter(rover=OuterRef("pk"), cleared_at__isnull=True)
            .order_by()
            .values("rover")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("alarm_team")
            .annotate(
                _last_frame=Subquery(newest.values("received_at")[:1]),
                _active_alarms=Subquery(active),
            )
        )

    @admin.display(description="Last frame (UTC)", ordering="_last_frame")
    def last_frame(self, rover: Rover) -> str:
        return utc_seconds(rover._last_frame) if rover._last_frame else "no frame yet"

    @admin.display(description="Active alarms", ordering="_active_alarms")
    def active_alarms(self, rover: Rover):
        count = rover._active_alarms or 0
        if not count:
            return "0"
        url = reverse("admin:rover_alarm_changelist")
        return format_html(
            '<a href="{}?rover__id__exact={}&amp;state=active">{}</a>', url, rover.pk, count
        )


# --- telemetry and alarms ---


@admin.register(TelemetryFrame)
class TelemetryFrameAdmin(admin.ModelAdmin):
    """Frames are the rover's record: listed and filtered, never edited by hand."""

    list_display = [
        "rover",
        "seq",
        "recorded",
        "received",
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

    @admin.display(description="Recorded (UTC)", ordering="recorded_at")
    def recorded(self, frame: TelemetryFrame) -> str:
        return utc_seconds(frame.recorded_at)

    @admin.display(description="Received (UTC)", ordering="received_at")
    def received(self, frame: TelemetryFrame) -> str:
        return utc_seconds(frame.received_at)


class AlarmStateFilter(admin.SimpleListFilter):
    """The dashboard's three states: active (nobody has answered), acknowledged, cleared."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("acknowledged", "Acknowledged"), ("cleared", "Cleared")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(cleared_at__isnull=True, acknowledged_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(cleared_at__isnull=True, acknowledged_at__isnull=False)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = [
        "rover",
        "kind",
        "message",
        "state",
        "raised",
        "cleared",
        "acknowledged_by",
        "acknowledged",
    ]
    list_filter = [AlarmStateFilter, "rover", "kind"]
    actions = ["acknowledge"]
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

    @admin.display(description="State")
    def state(self, alarm: Alarm) -> str:
        if alarm.cleared_at is not None:
            return "Cleared"
        return "Acknowledged" if alarm.acknowledged_at is not None else "Active"

    @admin.display(description="Raised (UTC)", ordering="raised_at")
    def raised(self, alarm: Alarm) -> str:
        return utc_seconds(alarm.raised_at)

    @admin.display(description="Cleared (UTC)", ordering="cleared_at")
    def cleared(self, alarm: Alarm) -> str:
        return utc_seconds(alarm.cleared_at)

    @admin.display(description="Acknowledged (UTC)", ordering="acknowledged_at")
    def acknowledged(self, alarm: Alarm) -> str:
        return utc_seconds(alarm.acknowledged_at)

    @admin.action(description="Acknowledge selected alarms", permissions=["change"])
    def acknowledge(self, request, queryset):
        """Acknowledge each alarm as the admin user (announced like the dashboard's button)."""
        changed = 0
        for alarm in queryset.filter(acknowledged_at__isnull=True):
            _alarm, did = alarm_acknowledge(alarm=alarm, user=request.user)
            changed += did
        skipped = queryset.count() - changed
        text = f"Acknowledged {changed} alarm(s) as {request.user.get_username()}."
        if skipped:
            text += f" {skipped} already acknowledged, left as they were."
        self.message_user(request, text, messages.SUCCESS)


# --- images ----------------------------------------------------------------------------------


class RoverImageAddForm(forms.ModelForm):
    """Upload an image through `image_store`, so admin uploads are validated like the API's."""

    upload = forms.FileField(help_text="JPEG, PNG, WebP, GIF, TIFF or BMP.")

    class Meta:
        model = RoverImage
        fields = ["rover", "camera", "captured_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["captured_at"].required = False
        self.fields["captured_at"].help_text = "Empty: now."
        self.stored: RoverImage | None = None
        self.user = None

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if self.errors or upload is None:
            return cleaned
        try:
            self.stored = image_store(
                rover=cleaned["rover"],
                fileobj=upload,
                camera=cleaned.get("camera") or Camera.NAVCAM,
                captured_at=cleaned.get("captured_at"),
                user=self.user,
                original_name=upload.name,
            )
        except ImageRejected as exc:
            self.add_error("upload", exc.detail)
        return cleaned


@admin.register(RoverImage)
class RoverImageAdmin(admin.ModelAdmin):
    list_display = ["id", "preview", "rover", "camera", "captured", "size", "dimensions"]
    list_filter = ["rover", "camera", "captured_at"]
    date_hierarchy = "captured_at"
    search_fields = ["original_name", "sha256"]
    readonly_fields = [
        "large_preview",
        "rover",
        "original_name",
        "size",
        "sha256",
        "content_type",
        "width",
        "height",
        "received_at",
        "file",
        "thumbnail",
    ]
    fields = ["large_preview", "rover", "camera", "captured_at", *readonly_fields[2:]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = RoverImageAddForm
            form = super().get_form(request, obj, change=change, **kwargs)

            class BoundUserForm(form):
                def __init__(self, *args, **inner):
                    super().__init__(*args, **inner)
                    self.user = request.user

            return BoundUserForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["rover", "camera", "captured_at", "upload"]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        form.save_m2m = lambda: None
        return form.stored

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        # Added images were stored (files, row, announcement) by image_store.

    def delete_model(self, request, obj):
        image_delete(image=obj)

    def delete_queryset(self, request, queryset):
        for image in queryset:
            image_delete(image=image)

    @admin.display(description="Captured (UTC)", ordering="captured_at")
    def captured(self, obj: RoverImage) -> str:
        return utc_seconds(obj.captured_at)

    @admin.display(description="thumbnail")
    def preview(self, obj: RoverImage):
        return self._img(obj, 64)

    @admin.display(description="preview")
    def large_preview(self, obj: RoverImage):
        return self._img(obj, 320)

    @admin.display(description="size (px)")
    def dimensions(self, obj: RoverImage) -> str:
        return f"{obj.width} x {obj.height}"

    def _img(self, obj: RoverImage, px: int):
        if not obj.pk or not obj.thumbnail:
            return "-"
        url = reverse("image-thumbnail", args=[obj.pk])
        # Size by attributes, not a style attribute: the CSP forbids inline styles.
        scale = px / max(obj.width, obj.height, 1)
        return format_html(
            '<a href="{}"><img src="{}" alt="" width="{}" height="{}"></a>',
            reverse("image-download", args=[obj.pk]),
            url,
            max(1, round(obj.width * scale)),
            max(1, round(obj.height * scale)),
        )
