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
