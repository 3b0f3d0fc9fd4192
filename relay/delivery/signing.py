"""Which key signs a message: its From: domain, its account's sending domains, and a
short-lived cache of their decrypted keys in the worker.

A message is signed when the domain of its From: address is an active (verified) sending
domain of the message's account, or a subdomain of one: `d=` is that sending domain,
which DMARC's relaxed alignment accepts for the subdomain too. It is signed with every
active key of the domain (RSA, and Ed25519 when configured).

The keys of an account are read and decrypted once and kept for `CACHE_SECONDS`, so a
busy worker neither decrypts nor queries per message, and a rotation or a newly verified
domain is seen within that time. The lookup runs on the worker's database threads,
together with the claim (`deliver.claim_batch`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import AddressHeader
from email.parser import HeaderParser
from email.policy import SMTPUTF8

from cryptography.fernet import InvalidToken

from accounts.domains.dkim import decrypt_private_key
from accounts.models import DkimKeyState, DomainStatus, SendingDomain
from accounts.senders import split_address
from relay.delivery.dkim_sign import MessageSigner, SigningKey
from relay.delivery.upstreams.downgrade import split_message

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


def from_domain(raw: bytes) -> str | None:
    """The A-label domain of the message's From: address(es), or None when there is no
    From:, it cannot be read, or its addresses are at different domains (no one `d=`
    aligns with them all)."""
    head, _, _ = split_message(raw)
    try:
        text = head.decode("utf-8", "replace") + "\r\n\r\n"
        header = HeaderParser(policy=SMTPUTF8).parsestr(text).get("From")
        addresses = header.addresses if isinstance(header, AddressHeader) else ()
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return None  # the relay read it at accept time; a reader that cannot just signs nothing
    domains = set()
    for address in addresses:
        parts = split_address(address.addr_spec)
        if parts is None:
            return None
        domains.add(parts[1])
    return domains.pop() if len(domains) == 1 else None


@dataclass(frozen=True)
class _AccountKeys:
    loaded_at: float
    by_domain: dict[str, tuple[SigningKey, ...]]


class KeyCache:
    """The decrypted signing keys of accounts' active sending domains, per account."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._accounts: dict[int, _AccountKeys] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._accounts.clear()

    def keys_for(self, account_id: int, domain: str) -> tuple[SigningKey, ...]:
        """The keys that sign mail From: `domain` (or a subdomain's) for this account."""
        keys = self._account(account_id).by_domain
        name = domain
        while name:
            if name in keys:
                return keys[name]
            _, _, name = name.partition(".")
        return ()

    def _account(self, account_id: int) -> _AccountKeys:
        now = time.monotonic()
        with self._lock:
            cached = self._accounts.get(account_id)
        if cached is not None and now - cached.loaded_at < self.seconds:
            return cached
        loaded = _AccountKeys(now, _load(account_id))
        with self._lock:
            self._accounts[account_id] = loaded
        return loaded


def _load(account_id: int) -> dict[str, tuple[SigningKey, ...]]:
    domains = SendingDomain.objects.filter(
        account_id=account_id, status=DomainStatus.VERIFIED,
        dkim_keys__state=DkimKeyState.ACTIVE,
    ).distinct().prefetch_related("dkim_keys")
    by_domain: dict[str, tuple[SigningKey, ...]] = {}
    for domain in domains:
        if not domain.is_active:
            continue
        keys: list[SigningKey] = []
        # RSA first: a verifier that stops at the first signature it can check finds it.
        active = [k for k in domain.dkim_keys.all() if k.state == DkimKeyState.ACTIVE]
        for key in sorted(active, key=lambda k: (k.algorithm != "rsa", k.created)):
            try:
                private = decrypt_private_key(key.private_key_encrypted)
            except (InvalidToken, ValueError, TypeError):
                log.error("DKIM key %s of %s cannot be decrypted with SMTPPLUS_CREDENTIAL_KEYS",
                          key.selector, domain.domain)
                continue
            keys.append(SigningKey(domain.domain, key.selector, key.algorithm, private))
        if keys:
            by_domain[domain.domain] = tuple(keys)
    return by_domain


# One per worker process: its delivery tasks share it.
keys = KeyCache()


def signer_for(account_id: int, raw: bytes | None, queue_id: str = "") -> MessageSigner | None:
    """The signer for this message, or None when it is not to be signed."""
    if raw is None:
        return None
    domain = from_domain(raw)
    if domain is None:
        return None
    found = keys.keys_for(account_id, domain)
    return MessageSigner(found, queue_id) if found else None
