"""tus 1.0 requests for the tests: create an upload, send its bytes, or both in one go.

One helper for every module that uploads by tus, through Django's test client
(`TokenClient`, in process) or `httpx.AsyncClient` (a real server process, its
`base_url` set): both take the same paths and headers, and answer with a
`status_code`, `headers` and `content`.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

COLLECTION = "/api/rovers/curiosity/uploads/"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_OCTETS = "application/offset+octet-stream"


def metadata(**values: str) -> str:
    """Return an `Upload-Metadata` value: each key and its base64 value."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def path_of(location: str) -> str:
    """Return the path of an upload's `Location` (absolute on the wire)."""
    return "/" + location.split("/", 3)[3]


async def create(
    client: Any,
    length: int = 100,
    meta: str | None = None,
    *,
    collection: str = COLLECTION,
    **headers: str,
) -> Any:
    """POST a creation of `length` bytes (with `Upload-Metadata` when `meta` is given)."""
    headers = {**TUS, "Upload-Length": str(length), **headers}
    if meta is not None:
        headers["Upload-Metadata"] = meta
    return await client.post(collection, headers=headers)


async def patch(
    client: Any,
    url: str,
    offset: int,
    body: bytes,
    *,
    content_type: str = OFFSET_OCTETS,
    **headers: str,
) -> Any:
    """PATCH `body` at `offset` of the upload at `url`."""
    headers = {**TUS, "Upload-Offset": str(offset), **headers}
    if isinstance(client, httpx.AsyncClient):
        headers["Content-Type"] = content_type
        return await client.patch(url, content=body, headers=headers)
    return await client.patch(url, data=body, content_type=content_type, headers=headers)


async def created_path(client: Any, length: int = 100, meta: str | None = None) -> str:
    """Create an upload of `length` bytes and return its path (the creation must answer 201)."""
    response = await create(client, length, meta)
    assert response.status_code == 201, response.content
    return path_of(response.headers["Location"])


async def upload(client: Any, data: bytes, meta: str | None = None) -> tuple[str, Any]:
    """Create an upload of `data`, send all of it in one PATCH; return its path and the answer."""
    url = await created_path(client, len(data), meta)
    return url, await patch(client, url, 0, data)
