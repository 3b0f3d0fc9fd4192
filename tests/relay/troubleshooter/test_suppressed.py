"""The troubleshooter's suppression check, from refusals the relay really made."""

from __future__ import annotations

from relay.models import Suppression
from relay.troubleshooter.base import OK, PROBLEM
from relay.troubleshooter.suppressed import check_suppressed
from tests.relay.troubleshooter.helpers import run, send


def test_a_recipient_refused_as_suppressed_is_a_problem_with_a_link_to_the_entry(relay, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net",
                               reason="mailbox_unknown", reply="550 5.1.1 No such user")
    pw = cast.acme_smtp_password
    assert run(check_suppressed, relay, cast.acme_smtp).status == OK
    for _ in range(2):
        code, _ = send(relay, cast.acme_smtp, pw, "shop@acme.test", to="gone@example.net")
        assert code == 550
    result = run(check_suppressed, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith("gone@example.net: refused 2 times")
    assert result.fix is not None
    assert "remove it from the suppression list in the console" in result.fix.text
    assert result.fix.actions[0].url == "/suppressions/?q=gone%40example.net"
