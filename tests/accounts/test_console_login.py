from django.core.cache import cache

from tests.conftest import PASSWORD


def _login(client, password, ip="198.51.100.7", username="alice@acme.test"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_member_logs_in_with_the_right_password(client, cast):
    cache.clear()
    response = _login(client, PASSWORD)
    assert response.status_code == 302
    assert response.url == "/"


def test_it_refuses_to_check_passwords_after_too_many_failures(client, cast, settings):
    cache.clear()
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for _ in range(3):
        assert "did not match" in _login(client, "wrong").content.decode()
    # Even the right password is refused now: guessing has been cut off.
    response = _login(client, PASSWORD)
    assert response.status_code == 200
    assert "Too many failed logins" in response.content.decode()
    # Another client address is not affected.
    assert _login(client, PASSWORD, ip="198.51.100.8").status_code == 302


def test_failures_across_usernames_count_per_address(client, cast, settings):
    cache.clear()
    settings.CONSOLE_LOGIN_FAILURES_PER_IP = 4
    for i in range(4):
        _login(client, "wrong", username=f"user{i}@acme.test")
    assert "Too many failed logins" in _login(client, PASSWORD).content.decode()


def _login_via_proxy(client, password, forwarded_for, username="alice@acme.test"):
    return client.post(
        "/login/", {"username": username, "password": password},
        REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_behind_the_proxy_failures_count_per_forwarded_client(client, cast, settings):
    cache.clear()
    settings.BEHIND_TLS_PROXY = True
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for _ in range(3):
        assert "did not match" in _login_via_proxy(client, "wrong", "203.0.113.5").content.decode()
    assert "Too many failed logins" in _login_via_proxy(
        client, PASSWORD, "203.0.113.5").content.decode()
    # Everyone reaches the console from the proxy's 127.0.0.1: another visitor is unaffected.
    assert _login_via_proxy(client, PASSWORD, "203.0.113.6").status_code == 302


def test_behind_the_proxy_only_the_address_the_proxy_appended_counts(client, cast, settings):
    cache.clear()
    settings.BEHIND_TLS_PROXY = True
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for i in range(3):
        # The client writes the first entries itself; the proxy appends what it saw.
        _login_via_proxy(client, "wrong", f"192.0.2.{i}, 203.0.113.5")
    assert "Too many failed logins" in _login_via_proxy(
        client, PASSWORD, "192.0.2.99, 203.0.113.5").content.decode()


def test_without_the_proxy_setting_a_forged_forwarded_for_does_not_escape_the_brake(
    client, cast, settings
):
    cache.clear()
    settings.BEHIND_TLS_PROXY = False
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for i in range(3):
        client.post("/login/", {"username": "alice@acme.test", "password": "wrong"},
                    REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    response = client.post("/login/", {"username": "alice@acme.test", "password": PASSWORD},
                           REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert "Too many failed logins" in response.content.decode()
