"""A recipient whose failure was reported, retried by an admin ("Retry now") and refused
again, gets no second failure report: the sender already has one for it. Through real
SMTP and a recording upstream, as the other report tests."""

from __future__ import annotations

import pytest
from django.utils import timezone

from relay.delivery.actions import retry_now
from relay.delivery.worker import deliver_due
from relay.models import DsnRecord, Recipient
from tests.relay.delivery.test_bounces import reports, send, status_blocks

pytestmark = pytest.mark.django_db(transaction=True)

BLOCKED = "550 5.7.1 Service unavailable; client host blocked"  # not mailbox-level


def _deliver(upstream) -> None:
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())  # the reports written by the first pass go out


def test_a_retried_recipient_that_fails_again_gets_no_second_report(relay, cast, upstream):
    upstream.replies["a@example.net"] = BLOCKED
    send(relay, cast, {"a@example.net": []})
    _deliver(upstream)
    [first] = reports(upstream)
    rcpt = Recipient.objects.get(address="a@example.net")
    assert rcpt.status == "failed"

    assert retry_now([rcpt], account=cast.acme) == 1
    _deliver(upstream)

    rcpt.refresh_from_db()
    assert rcpt.status == "failed" and rcpt.attempt_set.count() == 2
    assert len(reports(upstream)) == 1  # still only the first
    sent, skipped = DsnRecord.objects.filter(recipient=rcpt).order_by("created", "id")
    assert sent.dsn is not None and skipped.dsn is None
    assert skipped.note.startswith("already reported as failed in the report of ")
    assert "retried since and failed again" in skipped.note
    assert status_blocks(first)[1]["Final-Recipient"] == "rfc822; a@example.net"


def test_the_report_after_a_retry_lists_only_the_recipients_not_reported_yet(
    relay, cast, upstream
):
    upstream.replies["a@example.net"] = BLOCKED
    upstream.replies["b@example.net"] = ["451 4.3.0 Try later", "550 5.7.1 Still blocked"]
    send(relay, cast, {"a@example.net": [], "b@example.net": []})
    _deliver(upstream)
    assert len(reports(upstream)) == 1  # a failed; b deferred
    a = Recipient.objects.get(address="a@example.net")
    b = Recipient.objects.get(address="b@example.net")
    assert retry_now([a, b], account=cast.acme) == 2
    _deliver(upstream)

    first, second = reports(upstream)
    lines = [block["Final-Recipient"] for block in status_blocks(second)[1:]]
    assert lines == ["rfc822; b@example.net"]
    assert [block["Final-Recipient"] for block in status_blocks(first)[1:]] == [
        "rfc822; a@example.net"]


def test_a_recipient_whose_first_failure_was_not_reported_is_reported_after_a_retry(
    relay, cast, upstream, settings
):
    settings.DSN_RATE_LIMIT = 1
    upstream.replies["x@example.net"] = BLOCKED
    upstream.replies["a@example.net"] = BLOCKED
    send(relay, cast, {"x@example.net": []})
    send(relay, cast, {"a@example.net": []})
    _deliver(upstream)
    assert len(reports(upstream)) == 1  # the second was over the rate limit
    rcpt = Recipient.objects.get(address="a@example.net")
    assert DsnRecord.objects.get(recipient=rcpt).note.startswith("rate limit")
    settings.DSN_RATE_LIMIT = 100
    retry_now([rcpt], account=cast.acme)
    Recipient.objects.filter(pk=rcpt.pk).update(next_attempt_at=timezone.now())
    _deliver(upstream)
    assert len(reports(upstream)) == 2  # the sender had not heard of it: now it does
