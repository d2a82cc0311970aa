"""File contents on disk: deterministic pseudo-random blobs and given content.

A blob is written once and shared by every job file that names the same
(size, seed) or the same content; its sha256 is computed while it is written.
Generating a gigabyte must take seconds, so pseudo-random bytes come from
windows into one random base buffer (each mebibyte stamped with its index, so
no two mebibytes of a blob are equal), written in large blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_BASE_SIZE = 16 * _MIB + 4099  # not a power of two, so windows do not line up
_BLOCK = 4 * _MIB


@dataclass(frozen=True)
class Blob:
    path: Path
    size: int
    sha256: bytes


def pseudo_random_blocks(size: int, seed: int) -> list[tuple[int, int]]:
    """(offset into the base buffer, length) for each block of a blob; exposed for tests."""
    blocks = []
    for index, start in enumerate(range(0, size, _BLOCK)):
        window = (index * 2_654_435_761 + seed * 40_503) % (_BASE_SIZE - _BLOCK)
        blocks.append((window, min(_BLOCK, size - start)))
    return blocks


def _write_pseudo_random(path: Path, size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    digest = hashlib.sha256()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        if size <= _BLOCK:
            small = rng.randbytes(size)
            digest.update(small)
            out.write(small)
        else:
            base = memoryview(rng.randbytes(_BASE_SIZE))
            # Hash on a second thread while this one writes (both release the GIL).
            with ThreadPoolExecutor(max_workers=1) as hasher:
                for index, (window, length) in enumerate(pseudo_random_blocks(size, seed)):
                    block = bytearray(base[window : window + length])
                    for mib in range(0, length - 16, _MIB):
                        stamp = index * (_BLOCK // _MIB) + mib // _MIB
                        struct.pack_into("<QQ", block, mib, seed, stamp)
                    hashed = hasher.submit(digest.update, block)
                    out.write(block)
                    hashed.result()
    os.replace(tmp, path)
    return digest.digest()


def _write_content(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(_BLOCK):
            digest.update(chunk)
    return digest.digest()


class BlobStore:
    """Blobs under one directory, each made at most once (concurrent requests share it)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._blobs: dict[str, asyncio.Future[Blob]] = {}

    async def pseudo_random(self, size: int, seed: int = 0) -> Blob:
        key = f"random-{size}-{seed}"
        path = self._directory / f"{key}.bin"

        def make() -> Blob:
            logger.info("generating %d pseudo-random bytes (seed %d)", size, seed)
            return Blob(path, size, _write_pseudo_random(path, size, seed))

        return await self._once(key, make)

    async def content(self, content: bytes) -> Blob:
        sha256 = hashlib.sha256(content).digest()
        key = f"content-{sha256.hex()}"
        path = self._directory / f"{key}.bin"

        def make() -> Blob:
            _write_content(path, content)
            return Blob(path, len(content), sha256)

        return await self._once(key, make)

    async def _once(self, key: str, make: Callable[[], Blob]) -> Blob:
        future = self._blobs.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._blobs[key] = future
            try:
                future.set_result(await asyncio.to_thread(make))
            except Exception as error:
                del self._blobs[key]
                future.set_exception(error)
                raise
        return await asyncio.shield(future)
