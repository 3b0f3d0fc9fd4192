"""Webhook URLs as shown to people: without the password they may carry."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted_url(url: str) -> str:
    """`url` with the password of its user-info replaced, for pages, logs and audit rows.

    The webhook receiver may authenticate us with `https://user:password@host/`; that
    password is a credential like any other and is shown to no one after it is entered.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:********@{host}"))
