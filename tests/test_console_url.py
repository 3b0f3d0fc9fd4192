"""SMTPPLUS_CONSOLE_URL follows `up --bind`, and owners are told when links point at
another console than the one they are using."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpplus.management.commands.up import console_url_for
from tests.conftest import login
from tests.test_process_lifetime import descendants, free_port, start, wait_until


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.django_db(transaction=True)
def test_up_bind_becomes_the_console_url_of_every_child(tmp_path, monkeypatch):
    monkeypatch.delenv("SMTPPLUS_CONSOLE_URL", raising=False)
    port = free_port()
    parent = start(tmp_path, "up", "--bind", f"127.0.0.1:{port}", "--workers", "1")
    try:
        def relay_and_console_started() -> bool:
            assert parent.poll() is None, (tmp_path / "parent.log").read_text()
            commands = descendants(parent.pid).values()
            return any("gunicorn" in c for c in commands) and any(
                c.rstrip().endswith("manage.py deliver") for c in commands)

        wait_until(relay_and_console_started, 60, "up did not start its children")
        children = descendants(parent.pid)
        assert children
        for pid in children:
            assert _environ(pid).get("SMTPPLUS_CONSOLE_URL") == f"http://127.0.0.1:{port}"
    finally:
        parent.terminate()
        parent.wait(30)


def test_an_explicit_console_url_is_kept_by_up(monkeypatch):
    monkeypatch.setenv("SMTPPLUS_CONSOLE_URL", "https://mail.example.com")
    assert console_url_for("127.0.0.1:30080") == "https://mail.example.com"
    monkeypatch.delenv("SMTPPLUS_CONSOLE_URL")
    assert console_url_for("127.0.0.1:30080") == "http://127.0.0.1:30080"


def test_owners_are_warned_when_the_console_is_reached_at_another_url(client, cast, settings):
    settings.SMTPPLUS_CONSOLE_URL = "http://127.0.0.1:8000"
    settings.ALLOWED_HOSTS = ["*"]
    login(client, cast.alice)
    page = client.get("/", HTTP_HOST="127.0.0.1:30080").content.decode()
    assert 'id="console-url-mismatch"' in page
    assert "http://127.0.0.1:30080" in page and "SMTPPLUS_CONSOLE_URL" in page


def test_no_warning_when_the_console_is_reached_at_its_url(client, cast, settings):
    settings.SMTPPLUS_CONSOLE_URL = "http://console.example.test/"
    settings.ALLOWED_HOSTS = ["*"]
    login(client, cast.alice)
    page = client.get("/", HTTP_HOST="console.example.test:80").content.decode()
    assert 'id="console-url-mismatch"' not in page


def test_only_owners_see_the_console_url_warning(client, cast, settings):
    settings.SMTPPLUS_CONSOLE_URL = "http://127.0.0.1:8000"
    settings.ALLOWED_HOSTS = ["*"]
    login(client, cast.bob)
    page = client.get("/", HTTP_HOST="127.0.0.1:30080").content.decode()
    assert 'id="console-url-mismatch"' not in page

