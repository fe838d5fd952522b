from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest
import websockets

from accounts.logging import RedactTokensFilter, redact
from accounts.query import query_token

SECRET = "mc_s3cr3t-value"
ENCODED_SECRET = quote(SECRET, safe="").replace("_", "%5F")

# Spellings of the name a client might send: the standard parser accepts the
# percent-encoded ones; the others are refused but still redacted.
SPELLINGS = ["token", "tok%65n", "%74%6F%6B%65%6E", "%74oken", "TOKEN", "Token", "tOk%45N"]


def test_redact_hides_every_token_value():
    assert redact("GET /ws/comms/a?token=mc_abc&x=1 token=mc_def") == (
        "GET /ws/comms/a?token=[redacted]&x=1 token=[redacted]"
    )


@pytest.mark.parametrize("name", SPELLINGS)
def test_every_spelling_is_redacted(name):
    line = f'"WebSocket /ws/comms/a/?x=1&{name}={SECRET}&y=2" 403'
    assert SECRET not in redact(line)
    assert "x=1" in redact(line) and "y=2" in redact(line)


def test_a_percent_encoded_value_is_redacted_too():
    assert "s3cr3t" not in redact(f"/a?tok%65n={ENCODED_SECRET}")


@pytest.mark.parametrize(
    "query",
    [
        f"{name}={value}"
        for name in [*SPELLINGS, "to%6Ben", "token+", "+token", "x&token", "tokens", "a=1&token"]
        for value in [SECRET, ENCODED_SECRET]
    ],
)
def test_whatever_is_accepted_is_redacted(query):
    """The rule that decides acceptance and the one that redacts can never disagree."""
    accepted = query_token(query)
    if accepted:
        assert accepted == SECRET
        line = redact(f"/ws/comms/a/?{query}")
        assert SECRET not in line
        assert ENCODED_SECRET not in line


def test_acceptance_is_the_standard_query_parsing():
    assert query_token(f"tok%65n={SECRET}") == SECRET
    assert query_token(f"TOKEN={SECRET}") is None
    assert query_token("x=1") is None
    assert query_token("token=") == ""
    assert query_token("token=a&token=b") == ""  # which one was meant? neither


def test_unrelated_parameters_are_left_alone():
    assert redact("/a?tokens=1&my_token=2&x=token") == "/a?tokens=1&my_token=2&x=token"


def test_filter_rewrites_messages_built_from_arguments():
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s - %s", ("ws", "/a?TOKEN=s3"), None)
    assert RedactTokensFilter().filter(record)
    assert record.getMessage() == "ws - /a?TOKEN=[redacted]"


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_servers_never_log_a_websocket_token(server, server_process, user_factory, token_for):
    raw = token_for(user_factory())
    proc = server_process(server=server)

    async def connect(name: str) -> None:
        url = f"ws://127.0.0.1:{proc.port}/ws/comms/nowhere/?{name}={raw}"
        async with websockets.connect(url) as socket:
            await asyncio.wait_for(socket.recv(), 5)

    for name in ("token", "tok%65n", "TOKEN"):
        with pytest.raises(websockets.ConnectionClosed):
            asyncio.run(connect(name))
    proc.stop()
    log = proc.log()
    assert "/ws/comms/nowhere" in log
    assert raw not in log
