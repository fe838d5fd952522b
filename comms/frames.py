"""Client frames of the team room socket: size limits, parsing, validation, errors.

Frames over 64 KiB close with 1009 (checked here: uvicorn's own limit is 16 MiB
and daphne has none). daphne cannot send 1009 or 1013 (autobahn allows only 1000
and 3000-4999), so under daphne they are 4009 and 4013 (`_served_by_daphne`).

A text frame is JSON (an object with a `type`) or, for wscat and friends, a plain
message body. What the frames ask for is done by `TeamRoomConsumer`
(comms.consumers) and its live delivery (comms.delivery).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from mission_control.parsing import INT64_MAX, client_repr

from .services import CLIENT_ID_MAX_CHARS, text_storable

MAX_FRAME_BYTES = 64 * 1024
# A message id in a URL: ASCII digits (`int()` alone takes '²' and '٣'), at most INT64_MAX.
_ID_TEXT = re.compile(r"[0-9]{1,19}")

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNKNOWN_TEAM = 4404
CLOSE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 1013
CLOSE_INTERNAL_ERROR = 1011
# The database does not answer (mission_control.database_outage closes the handshake so too).
CLOSE_TRY_AGAIN_LATER = 1013

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _is_id(value: Any) -> bool:
    """Return whether a frame's value can be a message id (0 included), as a column holds it."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX


def _server_send(send: Any) -> Any:
    """Return the server's own send callable from under Channels' session wrapper.

    `InstanceSessionWrapper.send` only acts on `http.response.start`; for every
    `websocket.send` it still reads the lazy session twice, about 15% of a room
    burst's CPU (profiled, README), so live frames skip it.
    """
    for _ in range(10):
        if isinstance(send, functools.partial):
            return send  # a partial binds arguments: call it as it is
        if hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send  # channels.sessions.InstanceSessionWrapper
        else:
            break
    return send


def _served_by_daphne(send: Any) -> bool:
    """Return whether the server's own send callable (under Channels' wrappers) is daphne's."""
    for _ in range(10):
        if isinstance(send, functools.partial):
            send = send.func
        elif hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send  # channels.sessions.InstanceSessionWrapper
        else:
            break
    return getattr(send, "__module__", "").startswith("daphne")


class ClientFramesMixin:
    """The receiving half of `TeamRoomConsumer`: turn each client frame into an action.

    The actions (`_post`, `_history`, `_resume`, `_typing`) and `_close` are the
    consumer's and comms.delivery's.
    """

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.closing:
            return
        text = message.get("text")
        if text is not None:
            # A character is at most 4 UTF-8 bytes: only long texts need encoding.
            if len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES:
                return await self._close(CLOSE_TOO_BIG)
            return await self._receive_text(text)
        data = message.get("bytes") or b""
        if len(data) > MAX_FRAME_BYTES:
            return await self._close(CLOSE_TOO_BIG)
        await self._error("binary_frame", "Send text frames: JSON or a plain-text message.")

    async def _receive_text(self, text: str) -> None:
        if not text.lstrip().startswith(("{", "[")):
            # wscat and friends: a plain-text frame is a message body.
            return await self._post(text, None)
        try:
            content = json.loads(text)
        except ValueError as exc:
            return await self._error("invalid_json", f"Invalid JSON: {exc}")
        except RecursionError:
            # 64 KiB of '[' nest deeper than the parser's recursion limit.
            return await self._error("invalid_json", "Invalid JSON: nested too deep.")
        if not isinstance(content, dict):
            return await self._error("invalid_json", "A JSON frame must be an object.")
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs) -> None:
        kind = content.get("type")
        if kind == "message":
            return await self._post(content.get("body"), content.get("client_id"))
        if kind == "history":
            before = content.get("before")
            if before is not None and not _is_id(before):
                return await self._error("bad_field", "'before' must be a message id.")
            if not await self._replay_allowed():
                return None
            return await self._history(before)
        if kind == "resume":
            after = content.get("after")
            if not _is_id(after):
                return await self._error("bad_field", "'after' must be a message id (or 0).")
            if not await self._replay_allowed():
                return None
            return await self._resume(after)
        if kind == "typing":
            return await self._typing()
        await self._error(
            "unknown_type",
            f"Unknown type {client_repr(kind)}: use message, history, resume or typing.",
        )

    async def _error(self, code: str, detail: str, **extra: Any) -> None:
        frame = {"type": "error", "code": code, "detail": detail, **extra}
        await self.send(text_data=_dumps(frame))

    async def _replay_allowed(self) -> bool:
        """Take a replay token (comms.throttle); answer `rate_limited` when none is left."""
        if self._replays is None or self._replays.try_take():
            return True
        wait = round(self._replays.wait_seconds(), 2)
        await self._error(
            "rate_limited", "Too many history/resume requests; retry later.", retry_after=wait
        )
        return False

    @staticmethod
    def _naming(client_id: Any) -> dict[str, str]:
        """Name a refused message's valid client_id in its error.

        The sender can then mark exactly that message failed and not resend it.
        """
        # Never one that cannot be encoded: the error frame itself would fail to send.
        if (
            isinstance(client_id, str)
            and 0 < len(client_id) <= CLIENT_ID_MAX_CHARS
            and text_storable(client_id)
        ):
            return {"client_id": client_id}
        return {}
