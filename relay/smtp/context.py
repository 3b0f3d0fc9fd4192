"""What the SMTP handler and protocol class may use of their relay process.

`RelayServer` builds one `RelayContext` and hands it to its handler, which hands it to
every connection: the settings, the guard, the event log, the store (the database), the
group commit, the connection counters and the session watch. Nothing else of the server is
in reach, so what a hook can touch reads off this one class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from relay.nodes import ConnectionCounter
    from relay.smtp.accept import Submission
    from relay.smtp.config import RelayConfig
    from relay.smtp.guard import Guard
    from relay.smtp.protocol import RelaySMTP
    from relay.smtp.revocation import SessionWatch
    from relay.smtp.store import RelayStore


class EventSink(Protocol):
    """Records a relay event (buffered, written in batches)."""

    def __call__(self, kind: str, **fields: Any) -> None: ...


@dataclass(frozen=True, eq=False)
class RelayContext:
    config: RelayConfig
    loop: asyncio.AbstractEventLoop
    guard: Guard
    record_event: EventSink
    # Logins and hourly counts (and the group commit's writes): chosen once per process.
    store: RelayStore
    # Queues a message for the next group commit; the future gives its queue id.
    commit: Callable[[Submission], asyncio.Future[str]]
    stats: ConnectionCounter
    session_watch: SessionWatch
    # The admitted connections, closed by the server when it stops.
    open_sessions: set[RelaySMTP]
