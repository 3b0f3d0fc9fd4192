"""The upstream check: recipients the upstream refused, delivered for real."""

from __future__ import annotations

from relay.troubleshooter.base import NODATA, PROBLEM
from relay.troubleshooter.upstream import check_upstream
from tests.relay.troubleshooter.helpers import (
    deliver,
    run,
    send,
)


def test_upstream_failures_show_the_top_replies_and_link_to_the_log(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    upstream.replies["full@example.net"] = "552 5.2.2 Mailbox full"
    pw = cast.acme_smtp_password
    assert run(check_upstream, relay, cast.acme_smtp).status == NODATA
    for to in ("gone@example.net", "gone@example.net", "full@example.net", "ok@example.net"):
        assert send(relay, cast.acme_smtp, pw, "shop@acme.test", to=to)[0] == 250
    deliver(upstream)
    result = run(check_upstream, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0] == "Recipients of the last 24 h: 1 delivered, 3 failed"
    assert result.evidence[2] == "2 times: 550 5.1.1 No such user"
    assert result.evidence[3] == "1 time: 552 5.2.2 Mailbox full"
    assert result.fix.actions[0].url == f"/messages/?user={cast.acme_smtp.pk}&status=failed"
