"""The seed's team rooms (FastAPI, in memory), for bench/rooms.py only.

The seed's `ConnectionManager` and `/ws/comms/{team_channel}` endpoint as the seed
wrote them: a list of sockets per room in the one process, every text frame
broadcast as `Message: <text>` to each socket of the room in turn. Nothing is
stored, nobody is authenticated and rooms do not cross processes, so it runs as one
uvicorn worker. Never part of the product.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self) -> None:
        self.rooms: dict[str, list[WebSocket]] = {}

    async def connect(self, websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        self.rooms.setdefault(room, []).append(websocket)

    def disconnect(self, websocket: WebSocket, room: str) -> None:
        self.rooms[room].remove(websocket)

    async def broadcast_to_room(self, message: str, room: str) -> None:
        for connection in self.rooms.get(room, []):
            await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws/comms/{team_channel}")
async def websocket_comms_endpoint(websocket: WebSocket, team_channel: str) -> None:
    await manager.connect(websocket, team_channel)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast_to_room(f"Message: {data}", team_channel)
    except WebSocketDisconnect:
        manager.disconnect(websocket, team_channel)
