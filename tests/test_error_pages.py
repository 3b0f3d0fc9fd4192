"""The console's own 404 and 500 pages, its icon, and the invitation on an empty dashboard."""

from __future__ import annotations

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from tests.conftest import login

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_a_styled_404_with_the_navigation(client, cast, settings):
    settings.DEBUG = False
    login(client, cast.alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert 'nav class="mainnav"' in html and 'href="/messages/"' in html
    assert "/static/css/smtpplus.css" in html


def _boom(request):
    raise RuntimeError("the database fell over")


urlpatterns = [path("boom/", _boom), path("", include("smtpplus.urls"))]


def test_the_500_page_needs_no_database_and_keeps_the_navigation():
    with CaptureQueriesContext(connection) as queries:
        html = render_to_string("500.html")
    assert len(queries) == 0
    assert "Something went wrong on our side" in html
    assert 'href="/messages/"' in html and "/static/css/smtpplus.css" in html


@pytest.mark.urls(__name__)
def test_an_error_in_a_view_answers_the_500_page(client, settings):
    settings.DEBUG = False
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
    assert "the database fell over" not in response.content.decode()


def test_the_old_icon_address_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


def test_every_page_names_its_icon(client, cast):
    login(client, cast.alice)
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/").content.decode()


def test_an_empty_dashboard_invites_the_first_smtp_user(client, cast):
    cast.acme.smtp_users.all().delete()
    login(client, cast.alice)
    html = client.get("/").content.decode()
    assert 'id="first-smtp-user"' in html and "Create the first SMTP+ user" in html
    login(client, cast.victor)  # a viewer cannot create one, and is told so
    html = client.get("/").content.decode()
    assert "Create the first SMTP+ user" not in html and "viewers cannot" in html


def test_a_dashboard_with_smtp_users_does_not_invite(client, cast):
    login(client, cast.alice)
    assert 'id="first-smtp-user"' not in client.get("/").content.decode()
