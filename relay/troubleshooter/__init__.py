"""The troubleshooter: the seed's "why was my message not sent" table as live checks.

This module is the registry: which checks run, in which order. The contract of a check
is in `base`; the checks, one module per family, in `relay`, `credentials`, `senders`,
`limits`, `lockout`, `upstream` and `suppressed`; the one-click fixes in `fixes`; the test message in `testmessage`.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.models import SmtpUser
from relay.troubleshooter.base import Check, CheckResult, Facts
from relay.troubleshooter.credentials import check_credentials
from relay.troubleshooter.limits import check_hourly_limit, check_size
from relay.troubleshooter.lockout import check_lockout
from relay.troubleshooter.relay import check_port_open, check_port_supported, check_relay_running
from relay.troubleshooter.senders import (
    check_has_senders,
    check_sender_domains,
    check_sender_emails,
)
from relay.troubleshooter.suppressed import check_suppressed
from relay.troubleshooter.upstream import check_upstream


def all_checks() -> list[Check]:
    """The checks in the order the page shows them: the relay itself first."""
    return [
        check_relay_running,
        check_credentials,
        check_lockout,
        check_sender_domains,
        check_sender_emails,
        check_port_open,
        check_port_supported,
        check_has_senders,
        check_hourly_limit,
        check_size,
        check_upstream,
        check_suppressed,
    ]


def run_checks(
    user: SmtpUser, now: datetime | None = None, facts: Facts | None = None
) -> list[CheckResult]:
    """Every check, sharing what they read: `facts` if the page has loaded some already."""
    facts = facts or Facts(user, now or timezone.now())
    return [check(user, facts.now, facts) for check in all_checks()]

