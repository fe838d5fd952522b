from __future__ import annotations

import asyncio
import logging

import pytest
import websockets

from accounts.logging import RedactTokensFilter, redact


def test_redact_hides_every_token_value():
    assert redact("GET /ws/comms/a?token=mc_abc&x=1 token=mc_def") == (
        "GET /ws/comms/a?token=[redacted]&x=1 token=[redacted]"
    )


def test_filter_rewrites_messages_built_from_arguments():
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s - %s", ("ws", "/a?token=s3"), None)
    assert RedactTokensFilter().filter(record)
    assert record.getMessage() == "ws - /a?token=[redacted]"


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_servers_never_log_a_websocket_token(server, server_process, user_factory, token_for):
    raw = token_for(user_factory())
    proc = server_process(server=server)

    async def connect():
        url = f"ws://127.0.0.1:{proc.port}/ws/comms/nowhere/?token={raw}"
        async with websockets.connect(url) as socket:
            await asyncio.wait_for(socket.recv(), 5)

    with pytest.raises(websockets.ConnectionClosed):
        asyncio.run(connect())
    proc.stop()
    log = proc.log()
    assert "/ws/comms/nowhere" in log
    assert raw not in log
