"""Messages log, message detail, and retry/cancel from the console."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, SmtpUser
from relay.console.filters import decode_cursor, encode_cursor
from relay.headers import decoded_headers, display_subject
from relay.models import Attempt, Message, Recipient, RecipientStatus
from tests.conftest import login

SEED_SUBJECT = "=?utf-8?Q?I love you =E2=99=A5?="
XSS_SUBJECT = "<img src=x onerror=alert(1)>"

_seq = iter(range(1, 10**9))


def make_message(
    smtp_user: SmtpUser,
    *,
    recipients: list[tuple[str, str]] | None = None,
    subject: str = "Hello",
    sender: str = "shop@acme.test",
    created=None,
    raw: bytes | None = None,
) -> Message:
    """A stored message as the relay writes it, with one Recipient per (address, status)."""
    created = created or timezone.now()
    n = next(_seq)
    if raw is None:
        raw = (
            f"From: Shop <{sender}>\r\nTo: someone@example.net\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{n}@acme.test>\r\n\r\nBody\r\n"
        ).encode()
    message = Message.objects.create(
        account=smtp_user.account, smtp_user=smtp_user, queue_id=f"Q{n:08d}", created=created,
        envelope_from=sender, header_from=sender, subject=subject, size=len(raw), raw=raw,
    )
    for address, status in recipients or [("someone@example.net", RecipientStatus.DELIVERED)]:
        finished = created if status in ("delivered", "failed", "cancelled") else None
        Recipient.objects.create(
            message=message, account=message.account, smtp_user=smtp_user, address=address,
            status=status, created=created, finished_at=finished,
        )
    return message


def fail_recipient(recipient: Recipient, *, code: int = 550, enhanced: str = "5.1.1",
                   text: str = "No such user here", reason: str = "") -> None:
    Attempt.objects.create(recipient=recipient, upstream="mx.example.net", code=code,
                           enhanced=enhanced, text=text, outcome="failed", duration_ms=12)
    recipient.status = RecipientStatus.FAILED
    recipient.attempts = 1
    recipient.last_code, recipient.last_enhanced, recipient.last_text = code, enhanced, text
    recipient.fail_reason = reason
    recipient.finished_at = timezone.now()
    recipient.save()


LOG = reverse("relay:messages")


def detail_url(message: Message) -> str:
    return reverse("relay:message_detail", args=[message.pk])


# --- Log ------------------------------------------------------------------------------


def test_the_log_lists_the_accounts_messages_newest_first(alice_client, cast):
    now = timezone.now()
    make_message(cast.acme_smtp, subject="older one", created=now - timedelta(hours=1))
    newer = make_message(cast.acme_smtp, subject="newer one", sender="news@acme.test",
                         recipients=[("a@example.net", "failed"), ("b@example.net", "deferred")])
    make_message(cast.globex_smtp, subject="globex secret", sender="crm@globex.test")
    html = alice_client.get(LOG).content.decode()
    assert html.index("newer one") < html.index("older one")
    assert "globex secret" not in html and "crm@globex.test" not in html
    assert "news@acme.test" in html and "Acme web shop" in html
    assert f'<a href="{detail_url(newer)}" class="subject">newer one</a>' in html
    assert 'class="badge failed">Failed</span> <span class="mono">a@example.net' in html
    assert 'class="badge deferred">Deferred</span> <span class="mono">b@example.net' in html


def test_the_log_escapes_a_hostile_subject(alice_client, cast):
    make_message(cast.acme_smtp, subject=XSS_SUBJECT)
    html = alice_client.get(LOG).content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html


def test_the_log_shows_the_seeds_encoded_subject_decoded(alice_client, cast):
    make_message(cast.acme_smtp, subject=SEED_SUBJECT)
    html = alice_client.get(LOG).content.decode()
    assert "I love you ♥" in html
    assert "=E2=99=A5" not in html


def test_display_subject_decodes_leftover_encoded_words_only():
    assert display_subject(SEED_SUBJECT) == "I love you ♥"
    assert display_subject("=?utf-8?b?w6l0w6k=?= report") == "été report"
    assert display_subject("plain =? not encoded") == "plain =? not encoded"
    assert display_subject("=?x-unknown?Q?abc?=") == "=?x-unknown?Q?abc?="


def test_a_subject_with_broken_encoded_words_is_shown_as_written(alice_client, cast):
    broken = "=?utf-8?b?a?= invoice"  # bad base64: decode_header() raises
    message = make_message(cast.acme_smtp, subject=broken)
    assert display_subject(broken) == broken
    assert broken in alice_client.get(LOG).content.decode()
    assert broken in alice_client.get(f"{LOG}{message.pk}/").content.decode()
    assert alice_client.get(reverse("dashboard")).status_code == 200


def test_the_log_page_does_not_query_per_message(alice_client, cast):
    for i in range(30):
        make_message(cast.acme_smtp, subject=f"m{i}",
                     recipients=[("a@example.net", "delivered"), ("b@example.net", "failed")])
    with CaptureQueriesContext(connection) as queries:
        response = alice_client.get(LOG)
    assert response.status_code == 200
    assert response.content.decode().count('class="badge failed"') == 30
    assert len(queries) <= 8, [q["sql"] for q in queries]
    message_selects = [q["sql"] for q in queries if 'FROM "relay_message"' in q["sql"]]
    assert message_selects and all('"raw"' not in sql for sql in message_selects)


def test_the_log_shows_the_first_five_recipients_and_how_many_more(alice_client, cast):
    make_message(cast.acme_smtp, recipients=[(f"r{i}@example.net", "queued") for i in range(8)])
    make_message(cast.acme_smtp, recipients=[("only@example.net", "queued")])
    response = alice_client.get(LOG)
    rows = response.context["rows"]
    assert [r.address for r in rows[1].recipients] == [f"r{i}@example.net" for i in range(5)]
    assert (rows[1].more, rows[0].more) == (3, 0)
    html = response.content.decode()
    assert "r4@example.net" in html and "r5@example.net" not in html
    assert "+3 more" in html and html.count(" more</div>") == 1


@pytest.fixture
def filter_set(cast):
    other_user = SmtpUser.objects.create(account=cast.acme, name="Newsletter", username="news1")
    now = timezone.now()
    return {
        "shop_failed": make_message(cast.acme_smtp, subject="shop failed", sender="shop@acme.test",
                                    recipients=[("x@example.net", "failed"), ("y@example.org", "delivered")]),
        "shop_old": make_message(cast.acme_smtp, subject="shop old", sender="orders@acme.test",
                                 created=now - timedelta(days=10),
                                 recipients=[("old@example.org", "delivered")]),
        "news_deferred": make_message(other_user, subject="news deferred", sender="news@acme.test",
                                      recipients=[("z@example.com", "deferred")]),
        "user": other_user,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"shop failed"}),
        ({"status": "delivered"}, {"shop failed", "shop old"}),
        ({"status": "deferred"}, {"news deferred"}),
        ({"sender": "ORDERS@"}, {"shop old"}),
        ({"sender": "shop@acme.test", "sender_match": "equals"}, {"shop failed"}),
        ({"sender": "shop@acme", "sender_match": "equals"}, set()),
        ({"recipient": "example.org"}, {"shop failed", "shop old"}),
        ({"recipient": "Z@EXAMPLE.COM"}, {"news deferred"}),
    ],
)
def test_the_log_filters(alice_client, filter_set, params, expected):
    html = alice_client.get(LOG, params).content.decode()
    shown = {s for s in ("shop failed", "shop old", "news deferred") if s in html}
    assert shown == expected


def test_the_log_filters_by_smtp_user(alice_client, cast, filter_set):
    html = alice_client.get(LOG, {"user": filter_set["user"].pk}).content.decode()
    assert "news deferred" in html and "shop failed" not in html and "shop old" not in html


def test_the_log_filters_by_date_range(alice_client, filter_set):
    today = timezone.localdate()
    recent = alice_client.get(LOG, {"date_from": str(today - timedelta(days=1))}).content.decode()
    assert "shop failed" in recent and "shop old" not in recent
    old = alice_client.get(LOG, {"date_to": str(today - timedelta(days=5))}).content.decode()
    assert "shop old" in old and "shop failed" not in old


def test_another_accounts_smtp_user_is_not_a_valid_filter(alice_client, cast, filter_set):
    make_message(cast.globex_smtp, subject="globex secret")
    html = alice_client.get(LOG, {"user": cast.globex_smtp.pk}).content.decode()
    assert "globex secret" not in html
    assert "The filters above were ignored" in html


def test_a_reversed_date_range_is_reported(alice_client, filter_set):
    html = alice_client.get(LOG, {"date_from": "2030-01-02", "date_to": "2030-01-01"}).content.decode()
    assert "The start date is after the end date." in html


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_to": "9999-12-31"}, "To date"),
        ({"date_from": "9999-12-31"}, "From date"),
        ({"date_from": "0001-01-01"}, "From date"),
        ({"date_from": "1969-12-31", "date_to": "2030-01-01"}, "From date"),
    ],
)
def test_an_out_of_range_date_is_a_form_error_not_a_server_error(alice_client, filter_set,
                                                                  params, field):
    response = alice_client.get(LOG, params)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{field}: enter a date between 1970-01-01 and 9999-12-30." in html
    assert "The filters above were ignored" in html


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bulk_action_with_an_out_of_range_date_changes_nothing_and_says_why(
        alice_client, cast, method):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed")])
    bulk = reverse("relay:messages_bulk")
    response = getattr(alice_client, method)(bulk, {"action": "retry", "date_to": "9999-12-31"})
    assert response.status_code == 302 and "date_to=9999-12-31" in response["Location"]
    assert message.recipients.get().status == "failed"
    page = alice_client.get(response["Location"]).content.decode()
    assert "The filters are not valid; fix them first." in page
    assert "To date: enter a date between 1970-01-01 and 9999-12-30." in page


def test_the_last_day_a_filter_may_name_is_accepted(alice_client, filter_set):
    html = alice_client.get(LOG, {"date_from": "2000-01-01", "date_to": "9999-12-30"}).content.decode()
    assert "shop failed" in html and "shop old" in html
    assert "The filters above were ignored" not in html


def test_the_log_pages_by_newer_and_older_links(alice_client, cast):
    now = timezone.now()
    same_time = now - timedelta(minutes=30)
    rows = [
        Message(account=cast.acme, smtp_user=cast.acme_smtp, queue_id=f"P{i:05d}",
                envelope_from="shop@acme.test", subject=f"msg-{i:03d}",
                # Twenty share one timestamp: the id breaks the tie.
                created=same_time if 40 <= i < 60 else now - timedelta(minutes=i))
        for i in range(120)
    ]
    Message.objects.bulk_create(rows)
    seen: list[str] = []
    response = alice_client.get(LOG)
    pages = []
    while True:
        page = response.context["page"]
        pages.append(page)
        seen += [r.message.subject for r in response.context["rows"]]
        if not page.older:
            break
        response = alice_client.get(LOG, {"before": page.older})
    assert [len(p.items) for p in pages] == [50, 50, 20]
    assert len(seen) == 120 and len(set(seen)) == 120
    assert pages[0].newer is None and pages[1].newer and pages[2].older is None
    back = alice_client.get(LOG, {"after": pages[1].newer})
    assert [r.message.subject for r in back.context["rows"]] == seen[:50]
    assert 'rel="next"' in back.content.decode()


def test_pagination_links_keep_the_filters(alice_client, cast):
    for i in range(55):
        make_message(cast.acme_smtp, subject=f"f{i}", recipients=[("a@example.net", "failed")])
    html = alice_client.get(LOG, {"status": "failed"}).content.decode()
    assert "?status=failed&amp;before=" in html


def test_a_malformed_cursor_shows_the_first_page(alice_client, cast):
    make_message(cast.acme_smtp, subject="still here")
    assert "still here" in alice_client.get(LOG, {"before": "junk_x"}).content.decode()


def test_cursors_round_trip_to_the_microsecond():
    moment = timezone.now().replace(microsecond=123456)
    assert decode_cursor(encode_cursor(moment, 42)) == (moment, 42)
    assert decode_cursor("1_") is None and decode_cursor("") is None


# --- Detail ---------------------------------------------------------------------------

RAW = (
    b"Received: from app (app [192.0.2.1]) by relay.acme.test with ESMTPSA id Q1\r\n"
    b"From: =?utf-8?q?Caf=C3=A9_Shop?= <shop@acme.test>\r\n"
    b"To: x@example.net\r\n"
    b"Subject: =?utf-8?Q?I love you =E2=99=A5?=\r\n"
    b"X-Note: <b>not html</b>\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<h1 id=body-marker>secret body</h1>\r\n"
)


def test_the_detail_shows_envelope_decoded_headers_and_never_the_body(alice_client, cast):
    message = make_message(cast.acme_smtp, subject=SEED_SUBJECT, raw=RAW)
    html = alice_client.get(detail_url(message)).content.decode()
    assert "I love you ♥" in html
    assert "Café Shop &lt;shop@acme.test&gt;" in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html
    assert "secret body" not in html and "body-marker" not in html
    assert message.queue_id in html


def test_decoded_headers_survive_a_malformed_header():
    headers = decoded_headers(b"To: <<<@@@>>>\r\nSubject: ok\r\n\r\nbody")
    assert dict(headers)["Subject"] == "ok"
    assert "To" in dict(headers)


def test_the_detail_shows_every_attempt_with_the_upstream_reply(alice_client, cast):
    message = make_message(cast.acme_smtp, recipients=[("x@example.net", "queued")])
    recipient = message.recipients.get()
    Attempt.objects.create(recipient=recipient, upstream="mx1.example.net", code=451,
                           enhanced="4.7.1", text="Greylisted, try later", outcome="deferred")
    fail_recipient(recipient, code=550, enhanced="5.1.1", text="User <x> unknown",
                   reason="expired")
    html = alice_client.get(detail_url(message)).content.decode()
    for part in ("mx1.example.net", "451", "4.7.1", "Greylisted, try later",
                 "5.1.1", "User &lt;x&gt; unknown", "expired"):
        assert part in html
    history = html[html.index('<table class="attempts">'):]
    assert history.index("Greylisted") < history.index("User &lt;x&gt; unknown")


def test_another_accounts_message_is_not_found(alice_client, cast):
    message = make_message(cast.globex_smtp, recipients=[("x@example.net", "failed")])
    assert alice_client.get(detail_url(message)).status_code == 404
    assert alice_client.post(reverse("relay:message_retry", args=[message.pk])).status_code == 404
    assert alice_client.post(reverse("relay:message_cancel", args=[message.pk])).status_code == 404
    assert message.recipients.get().status == "failed"


def test_a_recipient_of_another_message_is_not_found(alice_client, cast):
    mine = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed")])
    theirs = make_message(cast.globex_smtp, recipients=[("b@example.net", "failed")])
    response = alice_client.post(reverse("relay:message_retry", args=[mine.pk]),
                                 {"recipient": theirs.recipients.get().pk})
    assert response.status_code == 404
    assert theirs.recipients.get().status == "failed"


# --- Actions --------------------------------------------------------------------------


def test_a_viewer_sees_no_buttons_and_cannot_act(client, cast):
    login(client, cast.victor)
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed"),
                                                       ("b@example.net", "queued")])
    html = client.get(detail_url(message)).content.decode()
    assert "Retry now" not in html and "Cancel" not in html
    assert "Retry all" not in client.get(LOG).content.decode()
    a, b = message.recipients.order_by("id")
    assert client.post(reverse("relay:message_retry", args=[message.pk]),
                       {"recipient": a.pk}).status_code == 403
    assert client.post(reverse("relay:message_cancel", args=[message.pk])).status_code == 403
    assert client.post(reverse("relay:messages_bulk"), {"action": "retry"}).status_code == 403
    assert client.get(reverse("relay:messages_bulk"), {"action": "retry"}).status_code == 403
    assert [r.status for r in message.recipients.order_by("id")] == ["failed", "queued"]
    assert not AuditEvent.objects.filter(action__startswith="queue.").exists()


def test_actions_need_post(alice_client, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed")])
    assert alice_client.get(reverse("relay:message_retry", args=[message.pk])).status_code == 405


def test_retry_now_requeues_one_failed_recipient_and_is_audited(client, cast):
    login(client, cast.bob)
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed"),
                                                       ("b@example.net", "failed")])
    a, b = message.recipients.order_by("id")
    html = client.get(detail_url(message)).content.decode()
    assert "Retry now" in html
    response = client.post(reverse("relay:message_retry", args=[message.pk]),
                           {"recipient": a.pk}, follow=True)
    assert "1 recipient(s) queued" in response.content.decode()
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("queued", "failed")
    event = AuditEvent.objects.get(action="queue.retry")
    assert event.account == cast.acme and event.actor == cast.bob
    assert event.details["recipients"] == [a.pk]


def test_retry_now_on_the_whole_message_requeues_failed_and_deferred(alice_client, cast):
    message = make_message(cast.acme_smtp, recipients=[
        ("a@example.net", "failed"), ("b@example.net", "deferred"), ("c@example.net", "delivered"),
    ])
    alice_client.post(reverse("relay:message_retry", args=[message.pk]))
    statuses = list(message.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["queued", "deferred", "delivered"]
    b = message.recipients.get(address="b@example.net")
    assert b.next_attempt_at <= timezone.now()
    assert AuditEvent.objects.get(action="queue.retry").details["count"] == 2


def test_cancel_stops_pending_recipients_and_is_audited(alice_client, cast):
    message = make_message(cast.acme_smtp, recipients=[
        ("a@example.net", "queued"), ("b@example.net", "deferred"), ("c@example.net", "delivered"),
    ])
    alice_client.post(reverse("relay:message_cancel", args=[message.pk]))
    statuses = list(message.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "delivered"]
    assert AuditEvent.objects.get(action="queue.cancel").account == cast.acme


def test_bulk_retry_asks_for_confirmation_then_acts_on_the_filtered_selection(alice_client, cast):
    other = SmtpUser.objects.create(account=cast.acme, name="Other", username="other1")
    m1 = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed"),
                                                  ("b@example.net", "deferred")])
    m2 = make_message(other, recipients=[("c@example.net", "failed")])
    m3 = make_message(cast.globex_smtp, recipients=[("d@example.net", "failed")])
    bulk = reverse("relay:messages_bulk")
    confirm = alice_client.get(bulk, {"action": "retry", "user": cast.acme_smtp.pk})
    assert confirm.status_code == 200
    assert confirm.context["count"] == 2
    assert "Retry 2 now" in confirm.content.decode()
    assert "<dt>SMTP+ user</dt><dd>Acme web shop</dd>" in confirm.content.decode()
    assert m1.recipients.filter(status="failed").count() == 1  # nothing changed yet
    response = alice_client.post(bulk, {"action": "retry", "user": cast.acme_smtp.pk})
    assert response.status_code == 302 and f"user={cast.acme_smtp.pk}" in response["Location"]
    assert set(m1.recipients.values_list("status", flat=True)) == {"queued", "deferred"}
    assert m2.recipients.get().status == "failed"
    assert m3.recipients.get().status == "failed"
    assert AuditEvent.objects.get(action="queue.retry").details["count"] == 2


def test_bulk_cancel_by_status_touches_only_pending_recipients(alice_client, cast):
    m1 = make_message(cast.acme_smtp, recipients=[("a@example.net", "deferred"),
                                                  ("b@example.net", "delivered")])
    m2 = make_message(cast.acme_smtp, recipients=[("c@example.net", "queued")])
    m3 = make_message(cast.globex_smtp, recipients=[("d@example.net", "deferred")])
    alice_client.post(reverse("relay:messages_bulk"), {"action": "cancel", "status": "deferred"})
    assert dict(m1.recipients.values_list("address", "status")) == {
        "a@example.net": "cancelled", "b@example.net": "delivered"}
    assert m2.recipients.get().status == "queued"
    assert m3.recipients.get().status == "deferred"


def test_an_unknown_bulk_action_changes_nothing(alice_client, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "failed")])
    response = alice_client.post(reverse("relay:messages_bulk"), {"action": "delete"})
    assert response.status_code == 302
    assert message.recipients.get().status == "failed"


def test_the_detail_names_an_smtp_user_without_a_name_once(alice_client, cast):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(name="")
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", "delivered")])
    html = alice_client.get(detail_url(message)).content.decode()
    assert html.count(cast.acme_smtp.username) == 1
