"""What the SMTP handler and protocol class may use of their relay process.

`RelayServer` builds one `RelayContext` and hands it to its handler, which hands it to
every connection: the settings, the guard, the event log, the database, the group
commit, the connection counters and the session watch. Nothing else of the server is
in reach, so what a hook can touch reads off this one class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from relay.nodes import ConnectionCounter
    from relay.smtp.accept import Submission
    from relay.smtp.asyncdb import AsyncPostgres
    from relay.smtp.config import RelayConfig
    from relay.smtp.guard import Guard
    from relay.smtp.protocol import RelaySMTP
    from relay.smtp.revocation import SessionWatch

T = TypeVar("T")


class EventSink(Protocol):
    """Records a relay event (buffered, written in batches)."""

    def __call__(self, kind: str, **fields: Any) -> None: ...


class RunDb(Protocol):
    """Runs a synchronous database function on the relay's thread pool."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]: ...


@dataclass(frozen=True, eq=False)
class RelayContext:
    config: RelayConfig
    loop: asyncio.AbstractEventLoop
    guard: Guard
    record_event: EventSink
    run_db: RunDb
    # PostgreSQL: logins and stores on the event loop (relay.smtp.asyncdb), else None.
    asyncdb: AsyncPostgres | None
    # Queues a message for the next group commit; the future gives its queue id.
    store: Callable[[Submission], asyncio.Future[str]]
    stats: ConnectionCounter
    session_watch: SessionWatch
    # When each user's last login was written (relay.smtp.login writes it at most so often).
    logins_written: dict[int, float]
    # The admitted connections, closed by the server when it stops.
    open_sessions: set[RelaySMTP]
