"""The JuliaHub client layer: HTTP, models, authentication, log paging."""

from jhfs.client.api import DownloadSink, JuliaHubClient
from jhfs.client.auth import TokenSource, discover
from jhfs.client.errors import (
    AuthenticationError,
    JuliaHubError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TransferCancelled,
)
from jhfs.client.logbuffer import LogBuffer
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
    "Job",
    "JobFile",
    "JuliaHubClient",
    "JuliaHubError",
    "LogBuffer",
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
