"""Warnings about what the server keeps sending: said once, not at every listing."""

from __future__ import annotations

import functools
import logging


@functools.lru_cache(maxsize=256)
def warn_once(logger: logging.Logger, message: str) -> None:
    """Log `message` once (while it is among the last 256): listings repeat every few seconds."""
    logger.warning("%s", message)
