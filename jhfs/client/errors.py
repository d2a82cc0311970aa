"""The client's exception hierarchy: what can go wrong talking to JuliaHub.

Messages are for people and never contain the token.
"""


class JuliaHubError(Exception):
    """Base of every error the client raises."""


class AuthenticationError(JuliaHubError):
    """No usable token: missing, expired, or refused by the server (401; at the
    identity check also a 500, or GraphQL's invalid-jwt)."""


class PermissionDeniedError(JuliaHubError):
    """The server refused the operation (403); kill/extend also say this for unknown jobs."""


class NotFoundError(JuliaHubError):
    """The server says the thing does not exist (unknown job, file or endpoint)."""


class ServerError(JuliaHubError):
    """The server answered, but wrongly: 5xx, `success: false`, or a malformed body."""


class ListedButMissingError(ServerError):
    """A 404 for what the server listed (the job list, a listed job's log or file):
    the server's error, not a name that does not exist, and a sign that the job
    changed since it was listed."""


class ServerUnreachableError(JuliaHubError):
    """No answer: connection refused or reset, timeout, or a body cut short."""


class TransferCancelled(Exception):
    """Nobody waits for the work any more (its reader was interrupted or ended); not a failure."""


class DeadlineExceeded(ServerUnreachableError):
    """The user operation's deadline passed before the server answered (ETIMEDOUT)."""
