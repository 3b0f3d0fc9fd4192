"""The registry: every check runs, in the order the page shows them."""

from __future__ import annotations

from accounts.models import SmtpUser
from relay.models import ConnectionStat
from relay.troubleshooter import run_checks
from relay.troubleshooter.base import OK
from tests.relay.troubleshooter.helpers import (
    deliver,
    send,
)


def test_all_checks_run_for_a_healthy_user(relay, cast, upstream):
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "shop@acme.test")[0] == 250
    deliver(upstream)
    relay.flush()
    user = SmtpUser.objects.get(pk=cast.acme_smtp.pk)
    results = run_checks(user)
    assert [r.key for r in results] == [
        "relay", "credentials", "lockout", "sender_domain", "sender_email", "port_open",
        "port_supported", "has_senders", "hourly_limit", "size", "upstream", "suppressed",
    ]
    assert {r.key: r.status for r in results if r.status != OK} == {}
    assert ConnectionStat.objects.filter(smtp_user=user).exists()
