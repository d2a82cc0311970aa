"""`--demo`: a handful of sample jobs a new user can explore."""

from __future__ import annotations

from jhfs_emulator.store import JobStore


async def seed_demo(store: JobStore) -> None:
    """Placeholder filled in below."""
