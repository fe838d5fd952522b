from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from .models import ApiToken
from .services import token_revoke, token_secret_assign


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    # A token acts with its user's permissions: whoever may mint or move one for
    # another user holds that user's powers. Only a superuser (who holds them all
    # already) manages others' tokens; anyone else lists, adds and revokes their own.
    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model()._default_manager.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Never hand an existing token (whose secret someone may know) to another user.
        return self.readonly_fields if obj is None else ["user", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if not change:
            raw = token_secret_assign(obj)
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(
                request, f"New token for {obj.user}: {raw} — copy it now, it is not shown again."
            )

    # Revoking writes: a view permission alone never writes (README "Access").
    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
