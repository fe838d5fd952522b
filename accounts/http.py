"""JSON error bodies shared by every API view."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def json_error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    """Return `{"error": code, "detail": detail, ...}` with the given status."""
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)
