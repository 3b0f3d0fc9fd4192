"""The relay's cached answers for the suppression lists: a change to a list applies at
RCPT TO within two limit-sync intervals (at once after the next sync), never later."""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.audit import Actor
from relay import suppression_csv, suppressions
from relay.models import SuppressionListVersion, SuppressionReason
from relay.smtp.suppression_cache import MISS, SuppressionCache
from relay.suppressions import Entry, Found

ACTOR = Actor("test")
ENTRY = Entry(timezone.now(), "manual", "", None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rcpt(relay, cast, address: str) -> int:  # noqa: ANN001
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.mail("shop@acme.test")
        code, _ = smtp.rcpt(address)
        smtp.rset()
    return code


def version(account) -> int:  # noqa: ANN001
    row = SuppressionListVersion.objects.filter(account=account).first()
    return row.version if row else 0


# --- the list's version ----------------------------------------------------------------
@pytest.mark.django_db
def test_every_change_to_a_list_bumps_its_version_and_no_other_lists(cast):
    assert version(cast.acme) == 0
    suppressions.add(cast.acme, "a@example.net", ACTOR)
    assert version(cast.acme) == 1
    suppression_csv.import_csv(cast.acme, "b@example.net\nc@example.net\n", ACTOR)
    assert version(cast.acme) == 2
    assert suppressions.suppress_failed(cast.acme.pk, "d@example.net",
                                        SuppressionReason.MAILBOX_UNKNOWN, "550", None)
    assert version(cast.acme) == 3
    suppressions.remove(cast.acme, ["a@example.net"], ACTOR)
    assert version(cast.acme) == 4
    assert version(cast.globex) == 0


@pytest.mark.django_db
def test_a_change_that_changes_nothing_leaves_the_version_alone(cast):
    suppressions.add(cast.acme, "a@example.net", ACTOR)
    assert not suppressions.suppress_failed(cast.acme.pk, "a@example.net",
                                            SuppressionReason.MAILBOX_UNKNOWN, "550", None)
    assert suppressions.remove(cast.acme, ["nobody@example.net"], ACTOR) == []
    assert version(cast.acme) == 1


@pytest.mark.django_db
def test_a_lookup_reads_the_entry_and_the_version_together(cast):
    assert suppressions.lookup(cast.acme.pk, "a@example.net") == Found(0, None)
    suppressions.add(cast.acme, "a@example.net", ACTOR,
                     expires=timezone.now() + timedelta(days=1))
    found = suppressions.lookup(cast.acme.pk, "a@example.net")
    assert found.version == 1 and found.entry is not None
    assert found.entry.reason == "manual" and found.entry.expires is not None
    assert suppressions.lookup(cast.globex.pk, "a@example.net") == Found(0, None)


# --- the cache -------------------------------------------------------------------------
def test_an_answer_is_used_until_its_version_was_last_confirmed_two_intervals_ago():
    clock = Clock()
    cache = SuppressionCache(2.0, clock)
    assert cache.answer(1, "a@example.net") is MISS
    cache.keep(1, "a@example.net", Found(0, None), started=clock.now)
    clock.now += 1.9
    assert cache.answer(1, "a@example.net") is None  # not suppressed, from the cache
    clock.now += 0.1
    assert cache.answer(1, "a@example.net") is MISS  # too old: ask the database
    cache.confirm({}, started=clock.now)  # a sync read the same version (no row: 0)
    assert cache.answer(1, "a@example.net") is None
    assert cache.hits == 2


def test_a_sync_that_reads_a_new_version_drops_the_accounts_answers():
    clock = Clock()
    cache = SuppressionCache(2.0, clock)
    cache.keep(1, "a@example.net", Found(3, None), started=clock.now)
    cache.keep(2, "b@example.net", Found(0, None), started=clock.now)
    clock.now += 0.5
    cache.confirm({1: 4}, started=clock.now)
    assert cache.answer(1, "a@example.net") is MISS
    assert cache.answer(2, "b@example.net") is None
    assert cache.accounts() == [2]


def test_a_lookup_read_before_a_change_the_cache_knows_of_is_not_kept():
    clock = Clock()
    cache = SuppressionCache(2.0, clock)
    cache.keep(1, "a@example.net", Found(5, ENTRY), started=clock.now)
    cache.keep(1, "b@example.net", Found(4, None), started=clock.now - 0.1)
    assert cache.answer(1, "b@example.net") is MISS
    assert cache.answer(1, "a@example.net") == ENTRY
    # A lookup with a newer version replaces every answer of the account.
    cache.keep(1, "b@example.net", Found(6, None), started=clock.now)
    assert cache.answer(1, "a@example.net") is MISS
    assert cache.answer(1, "b@example.net") is None


def test_a_sync_read_before_a_newer_lookup_leaves_its_answers_alone():
    clock = Clock()
    cache = SuppressionCache(2.0, clock)
    sync_started = clock.now
    clock.now += 0.1
    cache.keep(1, "a@example.net", Found(2, None), started=clock.now)
    cache.confirm({1: 1}, started=sync_started)
    assert cache.answer(1, "a@example.net") is None
    # A sync started after that lookup that finds an older version (or none: the
    # account is gone) drops them.
    cache.confirm({}, started=clock.now + 0.1)
    assert cache.answer(1, "a@example.net") is MISS


def test_an_entry_past_its_expiry_is_asked_for_again():
    clock = Clock()
    cache = SuppressionCache(2.0, clock)
    ended = Entry(timezone.now(), "manual", "", timezone.now() - timedelta(seconds=1))
    cache.keep(1, "a@example.net", Found(1, ended), started=clock.now)
    assert cache.answer(1, "a@example.net") is MISS


# --- at RCPT TO --------------------------------------------------------------------------
@pytest.mark.parametrize("relay", [{"limits_sync_seconds": 3600}], indirect=True)
def test_an_address_suppressed_from_the_console_is_refused_at_rcpt_after_the_next_sync(
    relay, cast
):
    cache = relay.server.store.suppression_cache
    assert rcpt(relay, cast, "gone@example.net") == 250
    assert rcpt(relay, cast, "gone@example.net") == 250
    assert cache.hits == 1  # the second RCPT did not ask the database
    suppressions.add(cast.acme, "gone@example.net", ACTOR)
    relay.flush()  # runs the limit sync now
    assert rcpt(relay, cast, "gone@example.net") == 550
    suppressions.remove(cast.acme, ["gone@example.net"], ACTOR)
    relay.flush()
    assert rcpt(relay, cast, "gone@example.net") == 250


@pytest.mark.parametrize("relay", [{"limits_sync_seconds": 3600}], indirect=True)
def test_an_address_the_relay_never_looked_up_is_refused_at_once(relay, cast):
    assert rcpt(relay, cast, "other@example.net") == 250
    suppressions.add(cast.acme, "gone@example.net", ACTOR)
    assert rcpt(relay, cast, "gone@example.net") == 550


@pytest.mark.parametrize("relay", [{"limits_sync_seconds": 0.25}], indirect=True)
def test_without_a_sync_a_cached_answer_is_not_used_past_two_sync_intervals(relay, cast):
    # Whether the sync runs in time or not (a busy machine, a database it cannot reach),
    # an answer is never older than two intervals (0.5 s here).
    assert rcpt(relay, cast, "gone@example.net") == 250
    suppressions.add(cast.acme, "gone@example.net", ACTOR)
    time.sleep(0.5)
    assert rcpt(relay, cast, "gone@example.net") == 550
