"""The troubleshooter's checks, each situation produced for real over SMTP against a relay."""

from __future__ import annotations

import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user, set_active, update_smtp_user
from accounts.models import AuditEvent, SmtpUser
from accounts.senders import InvalidEntry
from relay.delivery.worker import deliver_due
from relay.models import ConnectionStat
from relay.smtp.tls import write_self_signed
from relay.troubleshooter.checks import (
    NODATA,
    OK,
    PROBLEM,
    authorize_sender,
    check_credentials,
    check_has_senders,
    check_hourly_limit,
    check_sender_domains,
    check_sender_emails,
    check_size,
    check_upstream,
    run_checks,
)
from relay.troubleshooter.relay_checks import (
    check_port_open,
    check_port_supported,
    check_relay_running,
)


def body(sender: str, to: str = "someone@example.net", size: int = 0) -> bytes:
    filler = ("x" * 98 + "\r\n") * (size // 100)
    return f"From: {sender}\r\nTo: {to}\r\nSubject: Hello\r\n\r\n{filler}Hi.\r\n".encode()


@contextmanager
def logged_in(relay, user: SmtpUser, password: str):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(user.username, password)
        yield smtp


def send(relay, user, password, sender, to="someone@example.net", header_from=None, size=0):
    """One message over SMTP; returns the (code, reply) of the step that ended it."""
    with logged_in(relay, user, password) as smtp:
        code, reply = smtp.mail(sender)
        if code != 250:
            return code, reply
        code, reply = smtp.rcpt(to)
        if code != 250:
            return code, reply
        try:
            return smtp.data(body(header_from or sender, to, size))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def failed_login(relay, username: str, password: str = "wrong password") -> None:
    """One failed AUTH PLAIN (smtplib's login() would try LOGIN as well: two failures)."""
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = username, password
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("PLAIN", smtp.auth_plain)


def deliver(upstream) -> None:
    """Run the delivery worker once, on its own thread: a browser test earlier in the same
    run leaves Playwright's event loop on the main thread, where asyncio.run() refuses."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(deliver_due, upstream=upstream.url(), alerts_interval=None).result()


def run(check, relay, user: SmtpUser):
    relay.flush()
    user.refresh_from_db()
    return check(user, timezone.now())


def text(result) -> str:
    return "\n".join(result.evidence)


# --- credentials -------------------------------------------------------------------------
def test_failed_logins_are_a_problem_with_count_reason_ip_and_time(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    failed_login(relay, cast.acme_smtp.username)
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "2 failed logins in the last 24 h" in text(result)
    assert "Reason: wrong password — 2 times" in text(result)
    assert "From 127.0.0.1: 2 times" in text(result)
    assert "Last successful login: never" in text(result)
    assert "Reveal the password" in result.fix.text
    assert result.fix.actions[0].url == f"/users/{cast.acme_smtp.pk}/"


def test_a_disabled_user_is_a_problem_and_its_logins_say_so(relay, cast):
    set_active(cast.acme_smtp, False)
    failed_login(relay, cast.acme_smtp.username, cast.acme_smtp_password)
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "disabled" in result.title
    assert "Reason: user disabled — 1 time" in text(result)
    assert "Enable the user" in result.fix.text


def test_a_later_successful_login_makes_credentials_ok(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
        pass
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == OK
    assert "1 failed login" in text(result)
    assert "from 127.0.0.1" in text(result)
    assert "A login succeeded after the last failure." in text(result)


def test_a_success_soon_after_a_failure_counts_even_when_the_login_time_is_throttled(relay, cast):
    # The relay writes last_login_at at most once a minute; the connection counts know.
    for attempt in ("ok", "fail", "ok"):
        if attempt == "ok":
            with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
                pass
        else:
            failed_login(relay, cast.acme_smtp.username)
        relay.flush()
    assert run(check_credentials, relay, cast.acme_smtp).status == OK


def test_credentials_have_no_data_before_any_login(relay, cast):
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == NODATA
    assert "Last successful login: never" in text(result)


def test_another_users_failures_do_not_count(relay, cast):
    failed_login(relay, cast.globex_smtp.username)
    assert run(check_credentials, relay, cast.acme_smtp).status == NODATA


# --- senders -----------------------------------------------------------------------------
def test_rejected_sender_domains_are_grouped_with_counts(relay, cast):
    pw = cast.acme_smtp_password
    for sender in ("info@example.org", "sales@example.org", "info@example.org"):
        assert send(relay, cast.acme_smtp, pw, sender)[0] == 550
    # Envelope authorized, From: header not: rejected at the end of DATA.
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test", header_from="boss@other.test")[0] == 550
    result = run(check_sender_domains, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith("example.org: 3 rejected, last at ")
    assert "info@example.org, sales@example.org" in result.evidence[0]
    assert result.evidence[1].startswith("other.test: 1 rejected")
    labels = [a.label for a in result.fix.actions]
    assert labels == ["Authorize example.org", "Authorize other.test"]
    assert result.fix.actions[0].post == {"kind": "domain", "value": "example.org"}


def test_a_www_domain_offers_the_parent_domain_first(relay, cast):
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@www.example.com")[0] == 550
    result = run(check_sender_domains, relay, cast.acme_smtp)
    first, second = result.fix.actions
    assert first.label == "Authorize example.com and its subdomains"
    assert first.post == {"kind": "domain", "value": "example.com", "include_subdomains": "1"}
    assert second.label == "Authorize only www.example.com" and not second.primary


def test_rejected_sender_addresses_are_listed_one_by_one(relay, cast):
    pw = cast.acme_smtp_password
    send(relay, cast.acme_smtp, pw, "info@example.org")
    send(relay, cast.acme_smtp, pw, "shop@acme.test", header_from="info@example.org")
    send(relay, cast.acme_smtp, pw, "jane@example.net")
    result = run(check_sender_emails, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith(
        "info@example.org: 2 rejected (envelope sender ×1, From header ×1)")
    assert [a.post["value"] for a in result.fix.actions] == ["info@example.org", "jane@example.net"]
    assert all(a.post["kind"] == "email" for a in result.fix.actions)


def test_authorizing_the_domain_lets_a_resend_through_and_turns_both_checks_ok(relay, cast):
    pw = cast.acme_smtp_password
    assert send(relay, cast.acme_smtp, pw, "info@www.example.com")[0] == 550
    message = authorize_sender(cast.acme_smtp, "domain", "example.com", include_subdomains=True)
    assert message == "example.com and its subdomains is now authorized."
    code, reply = send(relay, cast.acme_smtp, pw, "info@www.example.com")
    assert code == 250, reply
    for check in (check_sender_domains, check_sender_emails):
        result = run(check, relay, cast.acme_smtp)
        assert result.status == OK
        assert "1 rejection of the last 24 h now pass" in text(result)
    audit = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert audit.details == {"added_domains": ["example.com"], "include_subdomains": True}


def test_authorizing_one_address_fixes_that_address_only(relay, cast):
    pw = cast.acme_smtp_password
    send(relay, cast.acme_smtp, pw, "info@example.org")
    send(relay, cast.acme_smtp, pw, "jane@example.org")
    authorize_sender(cast.acme_smtp, "email", "info@example.org")
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 250
    result = run(check_sender_emails, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert [a.post["value"] for a in result.fix.actions] == ["jane@example.org"]


def test_authorizing_an_existing_domain_with_subdomains_turns_the_option_on(cast):
    message = authorize_sender(cast.acme_smtp, "domain", "acme.test", include_subdomains=True)
    assert message == "acme.test and its subdomains are now authorized."
    assert cast.acme_smtp.authorized_domains.get().include_subdomains


@pytest.mark.parametrize("kind,value", [
    ("domain", "a.test b.test"), ("domain", "10.0.0.1"), ("email", "not-an-address"),
    ("domain", "x@y.test"), ("other", "a.test"),
])
def test_authorize_refuses_anything_but_one_valid_entry(cast, kind, value):
    with pytest.raises(InvalidEntry):
        authorize_sender(cast.acme_smtp, kind, value)
    assert not AuditEvent.objects.filter(action="smtpuser.senders_add").exists()


def test_a_user_without_senders_is_a_problem(relay, cast):
    user, pw = create_smtp_user(cast.acme, name="New app")
    assert send(relay, user, pw, "info@acme.test")[0] == 550
    result = run(check_has_senders, relay, user)
    assert result.status == PROBLEM
    assert "every message is rejected" in text(result)
    assert run(check_has_senders, relay, cast.acme_smtp).status == OK


# --- ports -------------------------------------------------------------------------------
def test_a_user_never_seen_gets_the_port_advice_and_the_no_alert_warning(relay, cast):
    result = run(check_port_open, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith("No connection seen from this user since ")
    assert f"The relay listens on {relay.port} (no TLS), as reported by the running relay." \
        in text(result)
    assert f"Try port {relay.port}" in result.fix.text
    assert "no alert can be sent: the message never reached the relay" in result.fix.text


def test_port_advice_suggests_2525_when_the_relay_listens_there(cast, start_relay):
    try:
        relay = start_relay(RELAY_LISTEN="127.0.0.1:0,2525")
    except Exception:  # 2525 taken by another run on this machine
        pytest.skip("port 2525 is busy")
    if 2525 not in [x.port for x in relay.listeners]:
        pytest.skip("port 2525 is busy")
    result = run(check_port_open, relay, cast.acme_smtp)
    assert "Try port 2525 or another port the relay listens on" in result.fix.text


def test_a_connection_from_the_user_makes_the_port_check_ok(relay, cast):
    with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
        pass
    result = run(check_port_open, relay, cast.acme_smtp)
    assert result.status == OK
    assert f"on port {relay.port}" in result.evidence[0]


def test_a_failed_login_also_counts_as_a_connection_seen(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    assert run(check_port_open, relay, cast.acme_smtp).status == OK


def test_supported_ports_list_the_connections_seen_on_each(relay, cast):
    assert run(check_port_supported, relay, cast.acme_smtp).status == NODATA
    for _ in range(2):
        with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
            pass
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "x@example.org")
    result = run(check_port_supported, relay, cast.acme_smtp)
    assert result.status == OK
    assert result.evidence[0] == f"Supported ports: {relay.port} (no TLS)."
    assert f"Port {relay.port} (supported): 3 logins, 1 refused command" in result.evidence


def test_a_port_the_relay_no_longer_listens_on_is_a_problem(cast, start_relay):
    old = start_relay()
    with logged_in(old, cast.acme_smtp, cast.acme_smtp_password):
        pass
    old.flush()
    old.stop()
    new = start_relay()
    result = run(check_port_supported, new, cast.acme_smtp)
    assert result.status == PROBLEM
    assert f"Port {old.port} (NOT listened on any more): 1 login" in text(result)
    assert f"for example {new.port}" in result.fix.text


# --- relay running -----------------------------------------------------------------------
def test_the_relay_check_follows_the_heartbeat(cast, start_relay):
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == PROBLEM
    assert "No relay process has ever started" in text(result)
    relay = start_relay()
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == OK
    assert f"listening on {relay.port}" in text(result)
    relay.stop()
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == PROBLEM
    assert "stopped at" in text(result)
    assert "manage.py runrelay" in result.fix.text


# --- limits, size, upstream ----------------------------------------------------------------
def test_hitting_the_hourly_limit_is_a_problem_until_the_limit_is_raised(relay, cast):
    update_smtp_user(cast.acme_smtp, {"hourly_limit": 1})
    pw = cast.acme_smtp_password
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test")[0] == 250
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test")[0] == 451
    result = run(check_hourly_limit, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Hourly limit: 1; messages accepted in the last hour: 1" in text(result)
    assert "Refused for the hourly limit: 1 time" in text(result)
    update_smtp_user(cast.acme_smtp, {"hourly_limit": 100})
    assert run(check_hourly_limit, relay, cast.acme_smtp).status == OK


@pytest.mark.parametrize("relay", [{"RELAY_MAX_MESSAGE_SIZE": 2000}], indirect=True)
def test_a_message_over_the_size_limit_is_reported(relay, cast):
    assert run(check_size, relay, cast.acme_smtp).status == OK
    code, _ = send(relay, cast.acme_smtp, cast.acme_smtp_password, "shop@acme.test", size=5000)
    assert code == 552
    result = run(check_size, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Refused for size: 1 time" in text(result)


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


def test_all_checks_run_for_a_healthy_user(relay, cast, upstream):
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "shop@acme.test")[0] == 250
    deliver(upstream)
    relay.flush()
    user = SmtpUser.objects.get(pk=cast.acme_smtp.pk)
    results = run_checks(user)
    assert [r.key for r in results] == [
        "relay", "credentials", "lockout", "sender_domain", "sender_email", "port_open",
        "port_supported", "has_senders", "hourly_limit", "size", "upstream",
    ]
    assert {r.key: r.status for r in results if r.status != OK} == {}
    assert ConnectionStat.objects.filter(smtp_user=user).exists()


# --- the page and the one-click fix over HTTP ---------------------------------------------
def page_url(user) -> str:
    return reverse("relay:troubleshoot", args=[user.pk])


def authorize_url(user) -> str:
    return reverse("relay:troubleshoot_authorize", args=[user.pk])


def test_the_page_shows_each_check_with_its_verdict_and_buttons(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.alice)
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert '<section class="card check" id="check-sender_domain" data-status="problem">' in html
    assert '<section class="card check" id="check-relay" data-status="ok">' in html
    assert ('2 problems found:</span>\n  <a href="#check-sender_domain">Sender domain not '
            'authorized</a> · <a href="#check-sender_email">Sender email not authorized</a>\n') in html
    assert '<input type="hidden" name="value" value="example.org">' in html
    assert ">Authorize example.org</button>" in html
    assert reverse("subject_tool") in html
    assert reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk]) in html


def test_the_page_reads_the_senders_and_the_live_relays_once(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.alice)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page_url(cast.acme_smtp)).status_code == 200
    for table in ("accounts_authorizeddomain", "accounts_authorizedemail", "relay_relaynode"):
        reads = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"]]
        assert len(reads) == 1, reads


def test_one_click_authorize_over_http_then_a_resend_succeeds(relay, cast, client):
    pw = cast.acme_smtp_password
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 550
    relay.flush()
    client.force_login(cast.bob)
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "example.org"})
    assert response.status_code == 302
    assert response["Location"] == page_url(cast.acme_smtp) + "#check-sender_domain"
    audit = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert audit.actor == cast.bob and audit.details["added_domains"] == ["example.org"]
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert "example.org is now authorized." in html
    assert 'id="check-sender_domain" data-status="ok"' in html
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 250


def test_an_invalid_value_is_refused_with_a_message(cast, client):
    client.force_login(cast.alice)
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "10.0.0.1"},
                           follow=True)
    assert "Could not authorize 10.0.0.1: IP addresses cannot be authorized" \
        in response.content.decode()
    assert list(cast.acme_smtp.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]


def test_a_viewer_sees_the_checks_but_cannot_authorize(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.victor)
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert 'data-status="problem"' in html
    assert authorize_url(cast.acme_smtp) not in html
    assert "An admin of the account can authorize senders." in html
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "example.org"})
    assert response.status_code == 403
    assert not cast.acme_smtp.authorized_domains.filter(domain="example.org").exists()


def test_another_accounts_user_is_not_found(cast, client):
    client.force_login(cast.charlie)
    assert client.get(page_url(cast.acme_smtp)).status_code == 404
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "evil.test"})
    assert response.status_code == 404
    assert not cast.acme_smtp.authorized_domains.filter(domain="evil.test").exists()


def test_authorize_is_post_only_and_the_page_needs_login(cast, client):
    assert client.get(page_url(cast.acme_smtp)).status_code == 302
    client.force_login(cast.alice)
    assert client.get(authorize_url(cast.acme_smtp)).status_code == 405


def test_auth_before_starttls_shows_as_tls_required_for_the_users_client(cast, start_relay,
                                                                          tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, ["relay.test"])
    relay = start_relay(RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key), RELAY_REQUIRE_TLS=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:  # the client worked once
        smtp.starttls(context=context)
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:  # then lost its STARTTLS
        smtp.ehlo()
        smtp.user, smtp.password = cast.acme_smtp.username, cast.acme_smtp_password
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth("PLAIN", smtp.auth_plain)
    assert refused.value.smtp_code == 538
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Reason: TLS required (AUTH before STARTTLS) — 1 time" in text(result)
    assert "Turn on STARTTLS" in result.fix.text


def test_the_users_page_and_the_dashboard_link_to_the_troubleshooter(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.victor)
    detail = client.get(reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk]))
    assert page_url(cast.acme_smtp) in detail.content.decode()
    assert page_url(cast.acme_smtp) in client.get(reverse("dashboard")).content.decode()
