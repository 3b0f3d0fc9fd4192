import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_owner_logs_in_and_sees_the_account_dashboard(page, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    assert page.locator("h1").first.inner_text() == "Acme"


def test_a_wrong_password_is_refused(page, cast):
    page.goto("/login/")
    page.fill("#id_username", "alice@acme.test")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "did not match" in page.locator(".alert-box").inner_text()
