from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count
from django.template.response import TemplateResponse

from .models import Membership, Message, Team
from .services import BODY_MAX_CHARS, message_post_system


class MembershipInline(admin.TabularInline):
    """Members of a team; deleting a row closes that member's open sockets (comms.signals)."""

    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    readonly_fields = ["joined_at"]


class AnnouncementForm(forms.Form):
    body = forms.CharField(
        label="Announcement",
        max_length=BODY_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        strip=True,
    )


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "memberships__user__username"]
    inlines = [MembershipInline]
    actions = ["post_announcement"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, team: Team) -> int:
        return team._member_count

    def has_announce_permission(self, request) -> bool:
        return request.user.has_perm("comms.add_message")

    @admin.action(description="Post an announcement", permissions=["announce"])
    def post_announcement(self, request, queryset):
        """Ask for the text, then post it as a system message into each selected room."""
        form = AnnouncementForm(request.POST if "post" in request.POST else None)
        if form.is_valid():
            teams = list(queryset)
            for team in teams:
                message_post_system(team=team, body=form.cleaned_data["body"])
            self.message_user(
                request,
                f"Announcement posted to {len(teams)} room(s): "
                + ", ".join(team.name for team in teams),
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Post an announcement",
            "opts": self.model._meta,
            "teams": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/comms/team/announce.html", context)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages are the rooms' record: readable and filterable, never edited here."""

    list_display = ["id", "team", "kind", "author", "short_body", "created_at"]
    list_filter = ["team", "kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["body", "author__username", "client_id"]
    date_hierarchy = "created_at"
    list_select_related = ["team", "author"]
    readonly_fields = ["team", "author", "body", "kind", "created_at", "client_id"]

    @admin.display(description="Body")
    def short_body(self, message: Message) -> str:
        return message.body if len(message.body) <= 80 else message.body[:79] + "…"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class UserMembershipInline(admin.TabularInline):
    """The user's teams, on the user's own admin page."""

    model = Membership
    fk_name = "user"
    extra = 1
    autocomplete_fields = ["team"]
    readonly_fields = ["joined_at"]
    verbose_name = "team membership"
    verbose_name_plural = "teams"


class UserWithTeamsAdmin(UserAdmin):
    """django.contrib.auth's user page, plus the teams the user belongs to."""

    inlines = [*UserAdmin.inlines, UserMembershipInline]

    def get_inlines(self, request, obj=None):
        # Adding a user is Django's two-step form (name and password first); teams come after.
        return super().get_inlines(request, obj) if obj is not None else []

    # Django lets anyone with `auth.change_user` grant any permission, including to
    # themselves, and set a superuser's password. Here only a superuser hands out
    # powers or touches a superuser's account; other user administrators manage
    # names, activity and team memberships.
    POWERS = ("is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [name for name in self.POWERS if name not in readonly]
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


# django.contrib.auth (listed before this app) has registered its UserAdmin by now.
User = get_user_model()
admin.site.unregister(User)
admin.site.register(User, UserWithTeamsAdmin)
