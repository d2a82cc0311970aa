"""The client's exception hierarchy: what can go wrong talking to JuliaHub.

Messages are for people and never contain the token.
"""


class JuliaHubError(Exception):
    """Base of every error the client raises."""


class AuthenticationError(JuliaHubError):
    """No usable token: missing, expired, or refused by the server (401; at the
    identity check also a 500, or GraphQL's invalid-jwt)."""


class TokenExpiredError(AuthenticationError):
    """auth.toml says its token has expired: nothing is sent with it."""


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
    """No answer: connection refused or reset, a name that does not resolve, a TLS
    failure, timeout, or a body cut short.

    `failure` says what went wrong, in words; the message also says what was
    asked and how often.
    """

    def __init__(self, message: str, failure: str | None = None) -> None:
        super().__init__(message)
        self.failure = message if failure is None else failure


class NotTLSError(ServerUnreachableError):
    """The server's port answered the TLS handshake with something else (an
    https:// URL for a server that speaks plain HTTP, say)."""


class TransferCancelled(Exception):
    """Nobody waits for the work any more (its reader was interrupted or ended); not a failure."""


class DeadlineExceeded(ServerUnreachableError):
    """The user operation's deadline passed before the server answered (ETIMEDOUT)."""
