"""The `?token=` query parameter: one rule for accepting it and for keeping it out of logs.

WebSocket clients such as wscat cannot send headers, so sockets accept the token
in the query string. Servers log WebSocket paths with their query string, so
every spelling a server accepts must be redacted. Acceptance is the standard
query parsing (percent-decoded name, exactly `token`); redaction is wider
(percent-decoded, any letter case, surrounding spaces), so whatever is accepted
is always redacted, and a near-miss such as `?TOKEN=` is redacted too.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus

TOKEN_PARAM = "token"  # noqa: S105 - a parameter name, not a secret
REDACTED = "[redacted]"

# `name=value` as it appears in a query string inside a log line. A name never
# spans a separator, so an accepted name (between `?`/`&` and `=`) is matched whole.
_PARAM = re.compile(r"(?P<name>[^\s?&=;/\"'<>]+)=(?P<value>[^&\s\"'<>]*)")


def query_token(query_string: str) -> str | None:
    """Return the token a query string carries: None without one, "" when it is unusable.

    Unusable: an empty value, or two different values (which one would be meant?).
    """
    values = {
        value
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if name == TOKEN_PARAM
    }
    if not values:
        return None
    return values.pop() if len(values) == 1 else ""


def is_token_name(raw_name: str) -> bool:
    """Return whether a raw (still percent-encoded) query name may mean the token."""
    return unquote_plus(raw_name).strip().casefold() == TOKEN_PARAM


def _redact_param(match: re.Match[str]) -> str:
    if not is_token_name(match["name"]):
        return match[0]
    return f"{match['name']}={REDACTED}"


def redact(text: str) -> str:
    """Return text with the value of every token-like query parameter replaced."""
    if "=" not in text:
        return text
    return _PARAM.sub(_redact_param, text)
