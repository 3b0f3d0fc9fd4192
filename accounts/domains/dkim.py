"""DKIM keys of sending domains: generation, encryption at rest, the record to publish,
and whether the published record matches.

Pure functions (no database): the console, the `domain` command and the delivery workers
call them. A key is RSA-2048 (what every verifier understands) or Ed25519 (RFC 8463, a
second signature beside the RSA one for verifiers that prefer it). The private part is
stored encrypted with the credential keys (accounts/credentials.py), like SMTP+
passwords, so `rotatecredentials` re-encrypts it and a database dump alone cannot sign.

The public part is stored as the record's `p=` value: base64 of the DER
SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), of the raw 32-byte key for Ed25519
(RFC 8463 §4.2).
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Literal

import dkim.util
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from accounts.credentials import fernet

Algorithm = Literal["rsa", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa", "ed25519")
RSA_BITS = 2048
# One character-string of a TXT record holds at most 255 bytes (RFC 1035 §3.3).
TXT_STRING_MAX = 255
_SELECTOR_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ZONE_TTL = 3600

CheckStatus = Literal["match", "missing", "mismatch", "could-not-check"]


@dataclass(frozen=True)
class GeneratedKey:
    algorithm: Algorithm
    private_key: bytes  # as dkimpy signs with it: PEM (RSA) or base64 seed (Ed25519)
    public_key: str  # the record's p= value


def generate_key(algorithm: Algorithm = "rsa") -> GeneratedKey:
    """A new key pair for DKIM signing."""
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, which dkimpy reads
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return GeneratedKey("rsa", private, base64.b64encode(public).decode("ascii"))
    if algorithm == "ed25519":
        ed = ed25519.Ed25519PrivateKey.generate()
        seed = ed.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw_public = ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return GeneratedKey(
            "ed25519", base64.b64encode(seed), base64.b64encode(raw_public).decode("ascii")
        )
    raise ValueError(f"unknown DKIM key algorithm {algorithm!r} (expected rsa or ed25519)")


def encrypt_private_key(private_key: bytes) -> str:
    return fernet().encrypt(private_key).decode("ascii")


def decrypt_private_key(token: str) -> bytes:
    """The private key; raises cryptography.fernet.InvalidToken if no key decrypts it."""
    return fernet().decrypt(token.encode("ascii"))


def new_selector(today: date, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A selector no key of the domain has used: the date it was made (so the operator
    can tell keys apart in DNS) and four random characters (two rotations in one day)."""
    while True:
        suffix = "".join(secrets.choice(_SELECTOR_ALPHABET) for _ in range(4))
        selector = f"sp{today:%Y%m%d}-{suffix}"
        if selector not in taken:
            return selector


def is_valid_selector(selector: str) -> bool:
    return bool(_SELECTOR.match(selector))


# --- The record to publish ---------------------------------------------------------------
@dataclass(frozen=True)
class DkimRecord:
    name: str  # "<selector>._domainkey.<domain>", no trailing dot
    value: str  # "v=DKIM1; k=rsa; p=…", as one string
    strings: tuple[str, ...]  # the value split into TXT character-strings of ≤255 bytes

    @property
    def quoted(self) -> str:
        """The strings as a DNS console or zone file wants them: "…" "…"."""
        return " ".join(f'"{s}"' for s in self.strings)

    @property
    def zone_line(self) -> str:
        """One line for a BIND-style zone file."""
        return f"{self.name}. {ZONE_TTL} IN TXT {self.quoted}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def record_value(algorithm: str, public_key: str) -> str:
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def split_txt(value: str, limit: int = TXT_STRING_MAX) -> tuple[str, ...]:
    """Split an ASCII record value into character-strings of at most `limit` bytes.

    A verifier joins them without a separator (RFC 6376 §3.6.2.2), so the split may fall
    anywhere; the value holds no `"` or `\\` that would need escaping."""
    data = value.encode("ascii")
    return tuple(data[i : i + limit].decode("ascii") for i in range(0, len(data), limit)) or ("",)


def dkim_record(selector: str, domain: str, algorithm: str, public_key: str) -> DkimRecord:
    """The exact TXT record that publishes this key."""
    value = record_value(algorithm, public_key)
    return DkimRecord(record_name(selector, domain), value, split_txt(value))


# --- Does the published record match? ----------------------------------------------------
@dataclass(frozen=True)
class DkimCheck:
    status: CheckStatus
    detail: str  # one sentence for the console and the CLI


def _tags(record: str) -> dict[bytes, bytes] | None:
    try:
        return dkim.util.parse_tag_value(record.encode("utf-8"))
    except dkim.util.InvalidTagValueList:
        return None


def _same_key(published: bytes, expected: str) -> bool:
    # Folding whitespace inside p= is allowed (RFC 6376 §3.6.1).
    return re.sub(rb"\s+", b"", published) == expected.encode("ascii")


def compare_published(
    status: str, records: tuple[str, ...], error: str, *, name: str, algorithm: str,
    public_key: str,
) -> DkimCheck:
    """Judge a TXT lookup of the key's record name (`status` as `smtpplus.dns.TxtLookup`
    gives it: found, nxdomain, nodata or error).

    A lookup that could not be answered (SERVFAIL, timeout) is "could-not-check", never
    "missing": the record may well be there."""
    if status == "error":
        return DkimCheck("could-not-check", f"The DNS lookup of {name} failed ({error}); "
                         "the record could not be checked, try again later.")
    if status in ("nxdomain", "nodata"):
        return DkimCheck("missing", f"No TXT record is published at {name}.")
    keys = [t for t in (_tags(r) for r in records) if t is not None and b"p" in t]
    if not keys:
        return DkimCheck("missing", f"The TXT records at {name} hold no DKIM key (no p= tag).")
    if len(keys) > 1:
        return DkimCheck("mismatch", f"{name} holds {len(keys)} DKIM records; verifiers may "
                         "pick any of them, so publish exactly one.")
    tags = keys[0]
    published_k = tags.get(b"k", b"rsa").decode("ascii", "replace").strip().lower()
    if not tags[b"p"].strip():
        return DkimCheck("mismatch", f"The key at {name} is revoked (empty p=).")
    if published_k != algorithm:
        return DkimCheck("mismatch", f"The record at {name} is for a k={published_k} key, "
                         f"this key is k={algorithm}.")
    if not _same_key(tags[b"p"], public_key):
        return DkimCheck("mismatch", f"The key published at {name} is not this key: "
                         "replace the record with the one shown.")
    return DkimCheck("match", f"The key published at {name} matches.")
