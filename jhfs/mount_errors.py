"""The error that stops a mount before it is made (kept apart: the CLI needs it
before it may import the FUSE binding)."""


class MountError(Exception):
    """Mounting cannot go ahead; the message is the one line the user sees."""
