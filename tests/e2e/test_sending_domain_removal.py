"""Browser: before a sending domain is removed, its page and the confirm prompt say which
authorizations go with it; dismissing keeps everything, accepting removes them and the
message lists them."""

from __future__ import annotations

import pytest

from accounts.models import AuthorizedDomain, AuthorizedEmail, SendingDomain
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.senders import authorize, own

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_domain_page_says_what_goes_and_removing_it_removes_that(page, cast):
    domain = own(cast.acme.pk, "example.com", include_subdomains=True)
    authorize(cast.acme_smtp, "example.com", include_subdomains=True)
    AuthorizedEmail.objects.create(smtp_user=cast.acme_smtp, email="news@example.com")
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto(f"/domains/{domain.pk}/")
    listed = page.locator("#removal")
    assert "also removes 2 authorizations that rest on it" in listed.inner_text()
    items = page.locator("ul.removal li").all_inner_texts()
    assert items == [f"example.com — {cast.acme_smtp.username}",
                     f"news@example.com — {cast.acme_smtp.username}"]

    prompts: list[str] = []
    page.once("dialog", lambda d: (prompts.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Remove domain").click()
    assert prompts == ["Remove example.com? This account's SMTP+ users can no longer send "
                       "as it, and 2 authorizations at it are removed."]
    assert SendingDomain.objects.filter(pk=domain.pk).exists()
    assert AuthorizedDomain.objects.filter(domain="example.com").exists()

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Remove domain").click()
    page.wait_for_url("**/domains/")
    flash = page.locator(".flash").inner_text()
    assert "example.com removed" in flash
    assert "Authorizations removed with it: example.com (" in flash
    assert not AuthorizedDomain.objects.filter(domain="example.com").exists()
    assert not AuthorizedEmail.objects.filter(email="news@example.com").exists()
