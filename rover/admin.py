from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Alarm, AlarmLimits, Camera, Rover, RoverImage, TelemetryFrame


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
        from .services.images import ImageRejected, image_store

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
    list_display = ["id", "preview", "rover", "camera", "captured_at", "size", "dimensions"]
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
        from .services.images import image_delete

        image_delete(image=obj)

    def delete_queryset(self, request, queryset):
        from .services.images import image_delete

        for image in queryset:
            image_delete(image=image)

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
