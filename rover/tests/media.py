"""What is on disk under MEDIA_ROOT, to prove an operation left nothing behind."""

from __future__ import annotations

from pathlib import Path


def media_files(root: str | Path) -> list[str]:
    """Return every file under `root` (MEDIA_ROOT), relative to it, sorted."""
    base = Path(root)
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
