"""DKIM signing of outgoing mail, at delivery time (dkimpy).

Messages are signed by the delivery worker, after `upstreams.downgrade` has turned the
message into what this upstream accepts (RFC 2047 headers for a server without
SMTPUTF8): the signature then covers exactly the bytes the upstream receives, so it stays
valid whatever the upstream supports. A signature made at accept time would be broken
by that downgrade.

Canonicalization relaxed/relaxed (survives the re-folding and whitespace changes mail
servers make); the headers RFC 6376 §5.4.1 recommends, as present; From: and Subject:
oversigned (listed once more than they occur, so that nobody can add a second one without
breaking the signature). Sender: is signed but not oversigned: mailing lists add one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

log = logging.getLogger(__name__)

CANONICALIZATION = (b"relaxed", b"relaxed")
OVERSIGNED = (b"from", b"subject")
_ALGORITHM = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}


# dkimpy computes RSA signatures with Python's own big-integer arithmetic: ~10 ms for a
# 2048-bit key on these machines, which would make signing cost more than relaying. The
# same RSASSA-PKCS1-v1_5 signature from OpenSSL (the `cryptography` package) takes ~0.7 ms;
# dkimpy still does all of DKIM (canonicalization, header selection, the field itself).
_dkimpy_rsa_sign = dkim.RSASSA_PKCS1_v1_5_sign


@functools.lru_cache(maxsize=64)
def _openssl_key(n: int, e: int, d: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int
                 ) -> rsa.RSAPrivateKey:
    public = rsa.RSAPublicNumbers(e, n)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key()


def _rsa_sign(digest: Any, pk: dict[str, int]) -> bytes:
    """dkimpy's `RSASSA_PKCS1_v1_5_sign(hash, private_key)`, computed by OpenSSL."""
    if digest.name.lower() != "sha256":
        return bytes(_dkimpy_rsa_sign(digest, pk))
    key = _openssl_key(pk["modulus"], pk["publicExponent"], pk["privateExponent"],
                       pk["prime1"], pk["prime2"], pk["exponent1"], pk["exponent2"],
                       pk["coefficient"])
    return key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign


@dataclass(frozen=True)
class SigningKey:
    domain: str  # d=, an A-label
    selector: str
    algorithm: str  # "rsa" or "ed25519"
    private_key: bytes  # decrypted: PEM (RSA) or base64 seed (Ed25519)

    def __repr__(self) -> str:  # never the key itself, in a log or a traceback
        return f"SigningKey({self.selector}._domainkey.{self.domain}, {self.algorithm})"


def _line_separator(raw: bytes) -> bytes:
    end = raw.find(b"\n")
    return b"\r\n" if end > 0 and raw[end - 1 : end] == b"\r" else b"\n"


def signature_header(raw: bytes, key: SigningKey) -> bytes:
    """The DKIM-Signature field (ending in the message's line separator) for `raw`."""
    linesep = _line_separator(raw)
    signer = dkim.DKIM(raw, linesep=linesep)
    signer.add_frozen(OVERSIGNED)
    headers = signer.default_sign_headers()
    present = {name.lower() for name, _ in signer.headers}
    # Oversigning a field the message lacks: listed once, so that none can be added.
    headers += [name for name in OVERSIGNED if name not in present]
    return bytes(signer.sign(
        key.selector.encode("ascii"),
        key.domain.encode("ascii"),
        key.private_key,
        signature_algorithm=_ALGORITHM[key.algorithm],
        canonicalize=CANONICALIZATION,
        include_headers=headers,
    ))


def sign(raw: bytes, keys: Sequence[SigningKey]) -> bytes:
    """`raw` with one DKIM-Signature per key, prepended.

    Each signature is computed over the message as given (DKIM-Signature fields are never
    signed), so their order does not matter to verifiers."""
    fields = [signature_header(raw, key) for key in keys]
    return b"".join(fields) + raw


class MessageSigner:
    """Signs one message for delivery: `signer(raw) -> signed raw`.

    A transport calls it once per SMTP transaction, after downgrading; the MX transport
    may call it again with the same bytes for another domain's hosts, so the last result
    is remembered. A message dkimpy cannot sign (it cannot parse it) goes out unsigned,
    with a warning: an accepted message is never held back for its signature."""

    def __init__(self, keys: Sequence[SigningKey], queue_id: str = "") -> None:
        self.keys = tuple(keys)
        self.queue_id = queue_id
        self._last: tuple[bytes, bytes] | None = None

    @property
    def domain(self) -> str:
        return self.keys[0].domain if self.keys else ""

    def __call__(self, raw: bytes) -> bytes:
        if self._last is not None and self._last[0] is raw:
            return self._last[1]
        try:
            signed = sign(raw, self.keys)
        except dkim.DKIMException as exc:
            log.warning("message %s sent without a DKIM signature for %s: %s",
                        self.queue_id, self.domain, exc)
            signed = raw
        self._last = (raw, signed)
        return signed
