"""Plain-language readings of why a message was not sent, and what to do about it.

The one explainer of the product: the message page, the troubleshooter and the alerts all
read failures through it. Two sources: a delivery attempt (its `FailReason`, set by the
transport that knew it, and the upstream's reply — code, enhanced status code, text — when
there was one), and the relay's own rejections (relay events), whose advice is the
matching row of the troubleshooting table the product grew from.
"""

from __future__ import annotations

from relay.explain.delivery import explain_attempt, explain_delivery
from relay.explain.reading import PORT_NOTE, Reading
from relay.explain.relay_events import explain_relay_event, login_failures, sender_rejected

__all__ = [
    "PORT_NOTE", "Reading", "explain_attempt", "explain_delivery", "explain_relay_event",
    "login_failures", "sender_rejected",
]
