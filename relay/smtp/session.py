"""One SMTP session of the relay: aiosmtpd's session plus who logged in.

The handler fills it at AUTH, the session watch (`relay.smtp.revocation`) updates or
revokes it after an admin change, and the checks see it only as a frozen snapshot.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import Envelope, Session

from accounts.senders import SenderPolicy
from relay.smtp.checks import SessionSnapshot

if TYPE_CHECKING:
    from relay.smtp.revocation import Revocation


class RelaySession(Session):
    """aiosmtpd's session plus who logged in (reset by STARTTLS, like the login)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.username_tried = ""
        self.username = ""
        self.smtp_user_id: int | None = None
        self.account_id: int | None = None
        self.priority = 3
        self.hourly_limit: int | None = None
        self.policy: SenderPolicy | None = None
        # The user's versions read at login, and why the session may not go on (both
        # kept by relay.smtp.revocation).
        self.version = 0
        self.password_version = 0
        self.revoked: Revocation | None = None

    # aiosmtpd sets login_data on every successful AUTH and its own property logs a
    # deprecation warning each time (a log record per login): a plain attribute instead.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value

    def snapshot(self, envelope: Envelope) -> SessionSnapshot:
        """What the checks may look at, frozen: the login and the envelope so far."""
        return SessionSnapshot(
            authenticated=bool(self.authenticated),
            username=self.username,
            policy=self.policy,
            hourly_limit=self.hourly_limit,
            mail_from=envelope.mail_from or "",
            recipients=len(envelope.rcpt_tos),
            smtputf8=bool(envelope.smtp_utf8),
        )
