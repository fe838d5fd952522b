"""bench/rooms.py: its clients do not pause for garbage collection while measuring; bursts in turns.

A collection in a client (100-300 ms once it walked what the process inherited from
the bench) landed inside one server's burst and not another's, depending on the
earlier phases; the clients are the instrument, so none may run during a phase.
"""

from __future__ import annotations

import gc
import json

from bench.rooms import RoomSocket, no_collection_while_measuring


def _text_frame(payload: bytes) -> bytes:
    assert 126 <= len(payload) < 65536
    return bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload


def _burst_frames(count: int) -> bytes:
    """`count` product message frames, as a member's socket receives a burst."""
    frames = []
    for k in range(count):
        event = {
            "type": "message",
            "id": k + 1,
            "team": "bench-0",
            "user": "r0m0",
            "body": "1.000000",
            "client_id": f"hb{k}",
            "created_at": "2026-11-25T22:00:00.000000+00:00",
        }
        frames.append(_text_frame(json.dumps(event, separators=(",", ":")).encode()))
    return b"".join(frames)


async def test_a_measured_phase_reading_a_burst_runs_no_collection():
    sock = RoomSocket(0, "bench-0", b"")
    sock.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    data = _burst_frames(20_000)  # a client process's share of the full run's burst
    started: list[int] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(record)
    try:
        with no_collection_while_measuring():
            for offset in range(0, len(data), 65536):  # as the kernel hands it over
                sock.data_received(data[offset : offset + 65536])
            during = list(started)
    finally:
        gc.callbacks.remove(record)

    assert len(sock.got) == 20_000
    # Only the full collection asked for before the phase; none while frames arrived.
    assert during == [2]
    assert gc.isenabled()


class _FakeRun:
    """Stands in for bench.rooms.RoomRun: records what it is asked to do, in order."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def wait_idle(self) -> None:
        self.log.append(("idle", self.name))

    def burst(self, number: int) -> dict:
        self.log.append(("burst", self.name, number))
        return {"rate": float(number), "by": self.name}


def test_bursts_are_taken_in_turns_on_idle_servers():
    """The seed and the product burst alternately (ABBA...), every server idle before each.

    Consumers measured minutes apart met different loads of the shared machine; in
    turns, a second apart, a passing load falls on both.
    """
    from bench.rooms import alternate_bursts

    log: list = []
    runs = {"seed": _FakeRun("seed", log), "hub": _FakeRun("hub", log)}
    results = alternate_bursts(runs, 4)

    bursts = [entry[1:] for entry in log if entry[0] == "burst"]
    assert bursts == [
        ("seed", 0),
        ("hub", 0),
        ("hub", 1),
        ("seed", 1),
        ("seed", 2),
        ("hub", 2),
        ("hub", 3),
        ("seed", 3),
    ]
    # Before every burst, both consumers' servers were waited idle.
    for index, entry in enumerate(log):
        if entry[0] == "burst":
            assert {e[1] for e in log[index - 2 : index] if e[0] == "idle"} == {"seed", "hub"}
    assert [r["rate"] for r in results["seed"]] == [0.0, 1.0, 2.0, 3.0]
    assert {r["by"] for r in results["hub"]} == {"hub"}
