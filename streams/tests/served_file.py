"""One file and one call of `streams.files.serve_file` on it, for the tests of that function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.files import serve_file

DATA = bytes(range(256)) * 4
ETAG = '"v1"'


def data_file(folder: Path) -> str:
    """Write DATA to a file in `folder`; return its path."""
    file = folder / "data.bin"
    file.write_bytes(DATA)
    return str(file)


def serve(request, path: str, **options: Any):
    """Serve `path` with ETAG, a fixed Last-Modified and 100-byte chunks; `options` override."""
    return serve_file(
        request,
        path,
        **{
            "content_type": "application/octet-stream",
            "filename": "data.bin",
            "etag": ETAG,
            "last_modified": 1_700_000_000,
            "chunk_size": 100,
            **options,
        },
    )
