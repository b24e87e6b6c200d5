"""Client library: safe commands (Lazy Pirate) and a consistent live mirror (Clone pattern).

    calls       each command as data, and how a reply is read (no I/O)
    endpoint    the options, the connection file, what both clients share
    commands    the async command socket and each command as a coroutine
    follow      the live mirror: subscribe, snapshot, resync, prompt waits
    aio         the async `Client`
    external    `ExternalTask`: a lease kept alive, questions asked and waited on
    blocking    the blocking `SyncClient` and `SyncExternalTask`
"""

from typing import TYPE_CHECKING

from core.lazy import exports

if TYPE_CHECKING:
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

_HOMES = {
    "Client": "aio", "SyncClient": "blocking", "SyncExternalTask": "blocking",
    "ClientOptions": "endpoint", "LOCAL_GRACE": "external", "ExternalTask": "external",
    "NoWordInTime": "external", "BATCH_LIMIT": "follow", "DISCONNECTED_AFTER": "follow",
    "STALE_AFTER": "follow", "Changes": "follow", "ConnectionState": "follow",
}
"""Where each name lives, imported on first use: a one-shot blocking command (a hook,
run for every tool call of an agent) then never pays for asyncio (~30 ms of start-up)."""


__getattr__ = exports(__name__, _HOMES)

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
