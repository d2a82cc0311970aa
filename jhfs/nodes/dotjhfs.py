"""MOUNT/.jhfs/: the mount's own files. Answered but not listed in MOUNT/ (as a job's
`wait` is in its directory): `ls -a`, `find` and `cp -r` of the mount see the
jobs alone.

.jhfs/status.json is what the mount is doing (jhfs.state.activity), rendered
anew at each open, so every read of one open file sees the same document. It
changes from one open to the next: it is read with direct I/O, never cut at a
size the kernel saw earlier, and its st_size is that of a document rendered at
the stat. Reading it costs no request to the server.
"""

from __future__ import annotations

import json
import time

from jhfs.nodes.base import FILE_MODE, Attrs, Directory, Handle, Node, require_read_only
from jhfs.nodes.errors import NoSuchName
from jhfs.nodes.text import SnapshotHandle
from jhfs.state import activity

NAME = ".jhfs"
STATUS_JSON = "status.json"


class DotJhfsDir(Directory):
    """MOUNT/.jhfs/: holds status.json."""

    def mtime_ns(self) -> int:
        return self.ctx.mounted_at_ns

    def children(self) -> list[str]:
        return [STATUS_JSON]

    def lookup(self, name: str) -> Node:
        if name == STATUS_JSON:
            return StatusJsonFile(self.ctx)
        raise NoSuchName(name)


class StatusJsonFile(Node):
    """MOUNT/.jhfs/status.json: the mount's activity as a JSON object (README's table)."""

    def render(self) -> bytes:
        ctx = self.ctx
        state = activity.snapshot(
            ctx.client,
            ctx.files,
            ctx.logs,
            mountpoint=ctx.mountpoint,
            user=ctx.user,
            mounted_at_ns=ctx.mounted_at_ns,
        )
        return (json.dumps(state, indent=2, ensure_ascii=False) + "\n").encode()

    def getattr(self) -> Attrs:
        return self._attrs(FILE_MODE, len(self.render()), time.time_ns())

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        return SnapshotHandle(self.render(), immutable=False)
