"""The JuliaHub client layer: HTTP, models, authentication, the live log stream."""

from jhfs.client.api import DownloadSink, Identity, JuliaHubClient
from jhfs.client.auth import TokenSource, discover
from jhfs.client.errors import (
    AuthenticationError,
    JuliaHubError,
    ListedButMissingError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
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
    "PermissionDeniedError",
    "ServerError",
    "ServerUnreachableError",
    "TokenSource",
    "TransferCancelled",
    "discover",
]
