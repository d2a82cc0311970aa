"""The JuliaHub client layer: HTTP, models, authentication, the live log stream."""

from jhfs.client.api import DownloadSink, Identity, JuliaHubClient, RetryPolicy
from jhfs.client.auth import TokenSource, discover
from jhfs.client.errors import (
    AuthenticationError,
    JuliaHubError,
    ListedButMissingError,
    NotFoundError,
    NotTLSError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TokenExpiredError,
    TransferCancelled,
)
from jhfs.client.models import (
    DONE_STATUSES,
    KNOWN_STATUSES,
    FileHash,
    Job,
    JobFile,
    LogMessage,
    LogPage,
)

__all__ = [
    "DONE_STATUSES",
    "KNOWN_STATUSES",
    "AuthenticationError",
    "DownloadSink",
    "FileHash",
    "Identity",
    "Job",
    "JobFile",
    "JuliaHubClient",
    "JuliaHubError",
    "ListedButMissingError",
    "LogMessage",
    "LogPage",
    "NotFoundError",
    "NotTLSError",
    "PermissionDeniedError",
    "RetryPolicy",
    "ServerError",
    "ServerUnreachableError",
    "TokenExpiredError",
    "TokenSource",
    "TransferCancelled",
    "discover",
]
