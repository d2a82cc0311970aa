"""What the nodes refuse, said in the tree's own terms (mapped to errnos in jhfs.errno_map).

A `Refusal` is the answer itself (a name that does not exist, a write to a
read-only tree...), not news: it is not logged. `InvalidInput` is what a
user wrote that jhfs cannot take (a bad ctl command), and `JobIsOver` a
command for a job that has ended: worth one log line each.
"""


class Refusal(Exception):
    """A path or an open file cannot do what was asked; the refusal is the answer."""


class NoSuchName(Refusal):
    """No entry of that name in the directory (ENOENT)."""


class NotADirectory(Refusal):
    """A file was asked for entries (ENOTDIR)."""


class IsADirectory(Refusal):
    """A directory was opened as a file (EISDIR)."""


class ReadOnly(Refusal):
    """A change to the tree, which is read-only but for ctl (EROFS)."""


class NoSuchAttribute(Refusal):
    """The path has no extended attribute of that name (ENODATA)."""


class AttributeNotSupported(Refusal):
    """An extended attribute outside the user. namespace, which jhfs never has (ENOTSUP)."""


class BadFileHandle(Refusal):
    """An open file asked to do what it was not opened for, or not open at all (EBADF)."""


class NotASymlink(Refusal):
    """readlink of a path that is no symlink (EINVAL)."""


class InvalidInput(Exception):
    """What a user wrote cannot be taken (a bad ctl command); nothing was sent (EINVAL)."""


class JobIsOver(Exception):
    """A ctl command for a job that is over (done): there is nothing to stop or
    extend, and nothing was sent (ESRCH)."""
