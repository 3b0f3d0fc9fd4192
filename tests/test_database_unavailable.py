"""A real console (gunicorn, as in production) whose database cannot be reached answers
a styled 503 page that says so, instead of a bare "Server Error (500)"."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import RequestFactory

from smtpplus.errors import server_error

DOWN_TEXT = "The console cannot reach its database"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Both ways a database goes away: a server nobody listens for, a file that cannot be opened.
UNREACHABLE = {
    "postgresql": lambda tmp: f"postgres://postgres@127.0.0.1:{free_port()}/smtpplus",
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'no-such-dir' / 'smtpplus.sqlite3'}",
}


@dataclass
class Console:
    port: int

    def request(self, method: str, path: str, body: str = "",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body.encode(), headers=headers or {})
            response = conn.getresponse()
            # Set-Cookie may repeat: keep them all, joined.
            found: dict[str, str] = {}
            for name, value in response.getheaders():
                key = name.lower()
                found[key] = f"{found[key]}, {value}" if key in found else value
            return response.status, found, response.read().decode()
        finally:
            conn.close()


@contextmanager
def console_on(database_url: str, tmp_path: Path) -> Iterator[Console]:
    """`gunicorn smtpplus.wsgi` on a free port with the given DATABASE_URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "false"}
    log = (tmp_path / "console.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "smtpplus.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "console.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the console did not start") from None
                time.sleep(0.1)
        yield Console(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(params=sorted(UNREACHABLE))
def console_without_database(request, tmp_path) -> Iterator[Console]:
    with console_on(UNREACHABLE[request.param](tmp_path), tmp_path) as console:
        yield console


def assert_database_down_page(status: int, headers: dict[str, str], body: str) -> None:
    assert status == 503
    assert headers["content-type"].startswith("text/html")
    assert headers["retry-after"] == "30"
    assert headers["content-security-policy"] == settings.CONTENT_SECURITY_POLICY
    assert DOWN_TEXT in body and "HTTP 503" in body
    assert "Server Error (500)" not in body
    # Styled like every console page, and nothing of the database's error leaks.
    assert '<link rel="stylesheet" href="/static/css/smtpplus.css">' in body
    assert "OperationalError" not in body and "Traceback" not in body


def test_a_logged_in_visitor_gets_a_503_page_saying_the_database_is_unreachable(
        console_without_database):
    # A session cookie makes the console look the session up: the first database access.
    for path in ("/", "/users/", "/messages/?status=failed", "/alerts/"):
        assert_database_down_page(*console_without_database.request(
            "GET", path, headers={"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"}))


def test_logging_in_while_the_database_is_down_gets_the_503_page(console_without_database):
    console = console_without_database
    status, headers, body = console.request("GET", "/login/")  # needs no database
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    cookie = re.search(r"csrftoken=([^;]+)", headers["set-cookie"]).group(1)
    form = f"csrfmiddlewaretoken={token}&username=alice%40acme.test&password=secret"
    assert_database_down_page(*console.request("POST", "/login/", body=form, headers={
        "Cookie": f"csrftoken={cookie}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": f"http://127.0.0.1:{console.port}/login/",
    }))


def test_the_health_probe_and_the_style_sheet_answer_without_a_database(console_without_database):
    status, _, _ = console_without_database.request("GET", "/healthz")
    assert status == 503
    status, headers, css = console_without_database.request("GET", "/static/css/smtpplus.css")
    assert status == 200 and ".card" in css


def test_other_server_errors_stay_a_plain_500():
    request = RequestFactory().get("/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500
    try:
        try:
            raise ConnectionRefusedError("connection refused")
        except ConnectionRefusedError as exc:
            raise OperationalError("could not connect to server") from exc
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503 and DOWN_TEXT in response.content.decode()
