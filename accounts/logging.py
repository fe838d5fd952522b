"""Keep API tokens out of the logs."""

from __future__ import annotations

import logging

from .query import redact

__all__ = ["RedactTokensFilter", "redact"]


class RedactTokensFilter(logging.Filter):
    """Rewrite a record's message so no token query value, in any spelling, reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
