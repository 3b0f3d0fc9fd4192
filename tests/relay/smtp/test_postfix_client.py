"""Postfix as a client: an MTA that uses our relay as its relayhost (SMTP AUTH with an
SMTP+ user's credentials) passes its senders' DSN requests through, and the message
goes through to the upstream with them."""

from __future__ import annotations

import smtplib
import time

import pytest

from relay.delivery.worker import deliver_due
from relay.models import Message
from tests.postfix import postfix_relaying_to

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = (b"From: Shop <shop@acme.test>\r\nTo: bob@example.net\r\n"
           b"Subject: Order 42 shipped\r\nMessage-ID: <order-42@acme.test>\r\n\r\n"
           b"Your order is on its way.\r\n")


def wait_for_message(postfix, timeout: float = 60) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Message.objects.filter(message_id="<order-42@acme.test>").first()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"Postfix did not relay the message through us:\n{postfix.log()[-3000:]}")


def test_postfix_relays_through_us_with_notify_orcpt_ret_and_envid(relay, upstream, cast):
    upstream.dsn = True
    with postfix_relaying_to(relay.host, relay.port, cast.acme_smtp.username,
                             cast.acme_smtp_password) as postfix:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as smtp:
            smtp.ehlo("app.test")
            assert smtp.has_extn("dsn")
            smtp.sendmail("shop@acme.test", ["bob@example.net"], MESSAGE,
                          mail_options=["RET=HDRS", "ENVID=order-42"],
                          rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"])
        message = wait_for_message(postfix)
        assert "postfix/smtp" in postfix.log() and "status=sent" in postfix.log()

    assert (message.dsn_ret, message.dsn_envid) == ("HDRS", "order-42")
    (recipient,) = message.recipients.all()
    assert recipient.address == "bob@example.net"
    assert recipient.notify == "SUCCESS,FAILURE"
    assert recipient.orcpt == "rfc822;bob@example.net"

    assert deliver_due(upstream=upstream.url())["delivered"] == 1
    (received,) = upstream.received
    assert received.rcpt_tos == ["bob@example.net"]
    assert b"Subject: Order 42 shipped" in received.data
    assert upstream.dsn_params["MAIL"] == ["RET=HDRS", "ENVID=order-42"]
    assert upstream.dsn_params["bob@example.net"] == [
        "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"]
