"""A plain-language reading: the shape every explanation of the product has."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    key: str
    # Short, lower case: it ends alert subjects ("… (Acme) — recipient mailbox does not exist").
    summary: str
    explanation: str
    what_to_do: str


# The seed's note: a closed port means the relay never sees the message.
PORT_NOTE = (
    "A client that cannot reach SMTP+ at all (for example because the port is closed on "
    "its network) produces no event, so no alert can be sent for it. If an application "
    "says it cannot connect, try another port (for example 2525 instead of 25) and ask "
    "the server's administrator which outbound ports are open."
)
