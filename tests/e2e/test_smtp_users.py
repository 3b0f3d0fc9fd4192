"""In a real browser: create an SMTP+ user, reveal its password, authorize senders."""

import pytest

from accounts.models import AuditEvent, SmtpUser
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.senders import authorize_email, own

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_owner_creates_a_user_reveals_its_password_and_authorizes_senders(page, cast):
    own(cast.acme.pk, "example.com", include_subdomains=True)  # only owned domains can be
    log_in(page, "alice@acme.test", PASSWORD)
    page.click("nav >> text=SMTP+ users")
    page.click("text=New SMTP+ user")
    page.fill("#id_name", "Newsletter")
    page.select_option("#id_priority", "2")
    page.click("button:has-text('Create user')")

    user = SmtpUser.objects.get(account=cast.acme, name="Newsletter")
    # Shown once, on the spot.
    assert page.inner_text("#cred-username") == user.username
    assert page.inner_text("#cred-password") == user.get_password()
    assert "cannot send: no authorized senders" in page.inner_text("main")

    # Later, the password is hidden until revealed, and revealing asks for the console password.
    page.goto(f"/users/{user.pk}/")
    assert page.locator("#cred-password").count() == 0
    page.click("#reveal-password")
    page.wait_for_url("**/confirm-password/**")
    assert "To reveal the password of Newsletter" in page.inner_text("main")
    page.fill("#id_password", "wrong password")
    page.click("button:has-text('Confirm')")
    assert "That is not your password." in page.inner_text("main")
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm')")
    assert page.inner_text("#cred-password") == user.get_password()
    assert AuditEvent.objects.filter(action="smtpuser.reveal", target_id=str(user.pk)).count() == 1

    # The copy button puts the password on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("button[data-copy='#cred-password']")
    assert page.evaluate("navigator.clipboard.readText()") == user.get_password()

    page.fill("#id_domains", "example.com; shop.example.com, bad..domain")
    page.click("#senders-form button[type=submit]")
    saved = page.inner_text(".senders-saved")
    assert "example.com" in saved and "shop.example.com" in saved
    errors = page.locator(".senders-errors li")
    assert errors.count() == 1
    assert errors.first.inner_text() == "bad..domain: empty label (two dots in a row)"
    assert page.locator("table.domains tbody tr").count() == 2
    assert sorted(user.authorized_domains.values_list("domain", flat=True)) == [
        "example.com", "shop.example.com"]
    # The revealed password is not carried over to the next page.
    assert page.locator("#cred-password").count() == 0

    page.fill("#id_address", "news@shop.example.com")
    page.click("#send-as button")
    assert page.inner_text("#send-as-result") == "Allowed: domain shop.example.com is authorized"


def test_reloading_the_user_created_page_creates_nothing(page, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/users/new/")
    page.fill("#id_name", "Newsletter")
    page.click("button:has-text('Create user')")
    user = SmtpUser.objects.get(account=cast.acme, name="Newsletter")
    assert page.inner_text("#cred-password") == user.get_password()
    page.reload()
    assert SmtpUser.objects.filter(account=cast.acme, name="Newsletter").count() == 1
    assert page.locator("#cred-password").count() == 0
    assert page.locator("#cred-password-hidden").count() == 1


def test_the_can_send_as_answer_is_scrolled_into_view(page, cast):
    for n in range(30):  # a long page: the answer is far below the top
        authorize_email(cast.acme_smtp, f"sender{n}@acme.test")
    page.set_viewport_size({"width": 1280, "height": 700})
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/")
    page.fill("#id_address", "news@acme.test")
    page.click("#send-as button")
    page.wait_for_selector("#send-as-result")
    box = page.locator("#send-as-result").bounding_box()
    assert box is not None
    assert 0 <= box["y"] and box["y"] + box["height"] <= 700, box
