"""API keys' secrets: generation, the keyed digest that is stored, and the network check.

A key is `smtpk_<prefix>_<secret>`. The prefix is stored in clear (it finds the row and
names the key in lists); only HMAC-SHA256 of the whole key is stored, under a key derived
from the newest credential key (SMTPPLUS_CREDENTIAL_KEYS, or SECRET_KEY in development).
A random 192-bit secret needs no slow KDF, and every configured credential key is tried,
so adding a credential key does not lock existing API keys out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from functools import lru_cache

from accounts.credentials import credential_keys

KEY_MARK = "smtpk"
PREFIX_BYTES = 6  # 8 url-safe characters
SECRET_BYTES = 24  # 192 bits


def generate_key() -> tuple[str, str]:
    """A new key and its prefix: (full key, prefix)."""
    prefix = secrets.token_urlsafe(PREFIX_BYTES).replace("_", "x").replace("-", "y")
    return f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}", prefix


def split_key(raw: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    mark, sep, rest = raw.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if mark != KEY_MARK or not sep or not sep2 or not prefix or not secret:
        return None
    return prefix


@lru_cache(maxsize=16)
def _hmac_key(key: bytes) -> bytes:
    return hashlib.sha256(b"smtpplus-api-key-digest:" + key).digest()


def digest_key(raw: str, key: bytes | None = None) -> str:
    hkey = _hmac_key(key if key is not None else credential_keys()[0])
    return hmac.new(hkey, raw.encode("utf-8"), hashlib.sha256).hexdigest()


def key_matches(raw: str, stored: str) -> bool:
    matched = False
    for key in credential_keys():
        matched |= hmac.compare_digest(digest_key(raw, key), stored)
    return matched


def parse_networks(text: str) -> list[str]:
    """"10.0.0.0/8, 192.0.2.7" → normalised CIDR strings; ValueError names a bad entry."""
    networks = []
    for entry in text.replace(",", " ").replace(";", " ").split():
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (CIDR)") from None
    return networks


def ip_allowed(ip: str | None, networks: list[str]) -> bool:
    if not networks:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n) for n in networks)
