"""Client library: safe commands (Lazy Pirate) and a consistent live mirror (Clone pattern).

    calls       each command as data, and how a reply is read (no I/O)
    endpoint    the options, the connection file, what both clients share
    commands    the async command socket and each command as a coroutine
    follow      the live mirror: subscribe, snapshot, resync, prompt waits
    aio         the async `Client`
    external    `ExternalTask`: a lease kept alive, questions asked and waited on
    blocking    the blocking `SyncClient` and `SyncExternalTask`
"""

from core.client.aio import Client
from core.client.blocking import SyncClient, SyncExternalTask
from core.client.endpoint import ClientOptions
from core.client.external import LOCAL_GRACE, ExternalTask, NoWordInTime
from core.client.follow import (
    BATCH_LIMIT,
    DISCONNECTED_AFTER,
    STALE_AFTER,
    Changes,
    ConnectionState,
)

__all__ = [
    "BATCH_LIMIT",
    "DISCONNECTED_AFTER",
    "LOCAL_GRACE",
    "STALE_AFTER",
    "Changes",
    "Client",
    "ClientOptions",
    "ConnectionState",
    "ExternalTask",
    "NoWordInTime",
    "SyncClient",
    "SyncExternalTask",
]
