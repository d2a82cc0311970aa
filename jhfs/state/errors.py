"""Errors the state layer adds to the client's (mapped to errnos in jhfs.errno_map)."""


class FileNotReadyError(Exception):
    """The job file's upload is unfinished (no hash yet): try again later (EAGAIN)."""


class IntegrityError(Exception):
    """Downloaded bytes did not match the file's hash; they were discarded (EIO)."""


class ShuttingDownError(Exception):
    """The mount is ending: a read still waiting for a download is let go (EIO)."""


class CacheChurnError(Exception):
    """What was just fetched into the cache was evicted again before it could be
    opened, time after time (EIO): the cache is too small for what is in use, or
    another mount sharing it evicts as fast."""


class WaitContinues(Exception):
    """A wait gave its FUSE thread back before the job was done, for others to use;
    its reader reads again (EINTR)."""
