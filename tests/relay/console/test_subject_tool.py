from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse


def get(client, **params):
    return client.get(reverse("subject_tool") + "?" + urlencode(params))


def test_it_encodes_a_subject_in_q_and_b_with_copy_buttons(alice_client):
    response = get(alice_client, text="I love you ♥")
    html = response.content.decode()
    assert response.status_code == 200
    assert "=?utf-8?Q?I_love_you_=E2=99=A5?=" in html
    assert "=?utf-8?B?SSBsb3ZlIHlvdSDimaU=?=" in html
    assert 'data-copy="#encoded-q"' in html and 'data-copy="#encoded-b"' in html


def test_it_decodes_the_seeds_lenient_form_and_names_the_problem(alice_client):
    html = get(alice_client, header="=?utf-8?Q?I love you =E2=99=A5?=").content.decode()
    assert '<pre id="decoded-text">I love you ♥</pre>' in html
    assert "spaces inside an encoded-word" in html


def test_a_broken_header_shows_the_problem_not_an_error_page(alice_client):
    response = get(alice_client, header="=?no-such-charset?B?@@@?= =?utf-8?Q?=FF?=")
    assert response.status_code == 200
    html = response.content.decode()
    assert "bad B encoding" in html
    assert "not valid utf-8" in html


def test_decoded_markup_is_escaped(alice_client):
    html = get(alice_client, header="=?utf-8?Q?=3Cscript=3Ealert(1)=3C/script=3E?=").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html


def test_the_page_says_utf8_clients_need_none_of_this(alice_client):
    html = get(alice_client).content.decode()
    assert "SMTPUTF8" in html
    assert "re-encodes the headers" in html


def test_a_viewer_may_use_the_tool(client, cast):
    client.force_login(cast.victor)
    assert get(client, text="x").status_code == 200


def test_it_requires_login(client, db):
    response = get(client, text="x")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_a_charset_whose_codec_refuses_to_replace_shows_the_problem_not_an_error_page(alice_client):
    response = get(alice_client, header="=?idna?Q?xn--zz?=")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<pre id="decoded-text">xn--zz</pre>' in html
    assert "not valid idna; shown as UTF-8" in html
