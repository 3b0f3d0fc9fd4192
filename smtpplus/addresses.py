"""Email addresses and domain names: the stored form of what people type, and back.

Pure functions of the text, used by every app: a domain is stored as its A-label
(lower case, no trailing dot), an address as its local part as typed and its domain as an
A-label; `domain_to_unicode` and `display_email` give the form shown to people.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from email.headerregistry import AddressHeader, HeaderRegistry

import idna

_HEADERS = HeaderRegistry()
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Characters that never belong in an unquoted local part we accept for authorization.
_BAD_LOCAL = re.compile(r'[\s<>()\[\]\\,;:@\x00-\x1f\x7f]')


class InvalidEntry(ValueError):
    """An entry that cannot be authorized; the message says why, for the admin."""


def _address_of_named(value: str) -> str:
    """The address of a `Name <address>` entry (the stdlib's header parser reads it);
    refused when it is not exactly one clear address."""
    if "@" in value[:value.rindex("<")]:
        raise InvalidEntry("two addresses in one entry: which one is meant? Keep only the one "
                           "between < and >")
    header = _HEADERS("to", value)
    assert isinstance(header, AddressHeader)  # "to" is an address header in the registry
    addresses = header.addresses
    if len(addresses) != 1 or header.defects:
        raise InvalidEntry("not one address: write it as name@example.com or Name <name@example.com>")
    return addresses[0].addr_spec


def normalize_domain(entry: str) -> str:
    """Return the stored form of a domain: lower case, no trailing dot, A-label."""
    value = entry.strip()
    if not value:
        raise InvalidEntry("empty")
    if "@" in value:
        raise InvalidEntry("this is an email address, not a domain")
    if value.startswith("[") or _is_ip(value.strip("[]")):
        raise InvalidEntry("IP addresses cannot be authorized; enter a domain name")
    if value.endswith("."):
        value = value[:-1]
    if "://" in value or "/" in value:
        raise InvalidEntry("enter just the domain name, without http:// or a path")
    if value.startswith("*."):
        raise InvalidEntry('wildcards are not needed: tick "include subdomains" instead')
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidEntry(_idna_reason(value, exc)) from None
    except UnicodeError:
        raise InvalidEntry("not a valid domain name") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InvalidEntry("a domain needs at least two labels, like example.com")
    if len(ascii_name) > 253:
        raise InvalidEntry("longer than 253 characters")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidEntry(f'"{label}" is not a valid domain label')
    if labels[-1].isdigit():
        raise InvalidEntry("the last label cannot be numeric")
    return ascii_name


def _idna_reason(value: str, exc: Exception) -> str:
    if ".." in value or value.startswith("."):
        return "empty label (two dots in a row)"
    if any(len(p) > 63 for p in value.split(".")):
        return "a label is longer than 63 characters"
    return "not a valid domain name"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def domain_to_unicode(ascii_name: str) -> str:
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return ascii_name


def normalize_email(entry: str) -> str:
    """Return the stored form of an address: local part as typed, domain as an A-label."""
    value = entry.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    elif value.endswith(">") and "<" in value:
        value = _address_of_named(value)
    if "@" not in value:
        raise InvalidEntry("missing @")
    local, _, domain = value.rpartition("@")
    if not local:
        raise InvalidEntry("missing the part before @")
    if len(local) > 64:
        raise InvalidEntry("the part before @ is longer than 64 characters")
    if _BAD_LOCAL.search(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEntry("the part before @ contains characters that are not allowed")
    try:
        ascii_domain = normalize_domain(domain)
    except InvalidEntry as exc:
        raise InvalidEntry(f"domain: {exc}") from None
    return f"{local}@{ascii_domain}"


@functools.lru_cache(maxsize=4096)
def split_address(address: str) -> tuple[str, str] | None:
    """(local, A-label domain) of a sender address, or None if it is not usable.
    Remembered: a pure function of the text, and the relay meets the same few From:
    addresses all day (IDNA encoding is not cheap)."""
    value = (address or "").strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if "@" not in value or any(c in value for c in "\x00\r\n"):
        return None
    local, _, domain = value.rpartition("@")
    if not local or not domain:
        return None
    try:
        return local, normalize_domain(domain)
    except InvalidEntry:
        return None


def display_email(email: str) -> str:
    """`local@xn--...` → `local@U-label`, for showing to people."""
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain_to_unicode(domain)}"
