"""Keep API tokens out of the logs."""

from __future__ import annotations

import logging
import re

# `?token=...` on WebSocket URLs, which servers log with the path.
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


def redact(text: str) -> str:
    """Return text with every `token=<value>` replaced by `token=[redacted]`."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokensFilter(logging.Filter):
    """Rewrite a record's message so no `token=` query value reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg = redact(message)
            record.args = None
        return True
