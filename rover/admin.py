from __future__ import annotations

from django.contrib import admin

from .models import AlarmLimits, Rover


class AlarmLimitsInline(admin.StackedInline):
    model = AlarmLimits
    can_delete = False


@admin.register(Rover)
class RoverAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "alarm_team", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [AlarmLimitsInline]
