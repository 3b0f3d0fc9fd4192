"""`manage.py deliver` as a real process against a slow real upstream: a crash re-sends at
most the message in flight, a killed worker's leases pass to a running one only once
they expire, a long transaction keeps its lease, and the messages of one claimed batch go
out side by side."""

from __future__ import annotations

import subprocess
import time

import pytest

from relay.delivery import queue
from relay.models import Attempt, Recipient, RecipientStatus
from tests.fake_upstream import FakeUpstream, queue_message
from tests.relay.delivery.test_concurrency import deliver_process

pytestmark = pytest.mark.django_db(transaction=True)


def delivered_addresses() -> set[str]:
    return set(
        Recipient.objects.filter(status=RecipientStatus.DELIVERED).values_list("address", flat=True)
    )


def wait_until(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition the test waited for never came true")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def addresses_whose_data_started(upstream: FakeUpstream, since: int) -> list[str]:
    return [rcpts[0] for _, rcpts in upstream.data_started[since:]]


def test_a_worker_killed_mid_batch_five_times_re_sends_at_most_one_message_per_kill(
    cast, upstream
):
    addresses = [f"user{i}@example.net" for i in range(24)]
    for address in addresses:
        queue_message(cast.acme_smtp, [address])
    # Each message is taken at once and answered 0.2 s later: a kill in between leaves a
    # copy upstream that the worker never heard of (the one message in flight).
    upstream.data_delay = 0.2
    kills = 0
    for _ in range(5):
        since = len(upstream.data_started)
        proc = deliver_process(upstream, "--concurrency", "1", DELIVERY_LEASE_SECONDS="1")
        try:
            # Well inside a batch of 20: the third message of this run is in flight.
            upstream.wait_for(lambda: len(upstream.data_started) >= since + 3, timeout=60)
            proc.kill()
            proc.wait(10)
            kills += 1
        finally:
            stop(proc)
        # Every message this run finished before starting the next one is recorded; only
        # the last one it started may be unknown to the database.
        sent = addresses_whose_data_started(upstream, since)
        assert set(sent[:-1]) <= delivered_addresses()

    survivor = deliver_process(upstream, "--concurrency", "1", DELIVERY_LEASE_SECONDS="1")
    try:
        wait_until(lambda: len(delivered_addresses()) == len(addresses))
    finally:
        stop(survivor)

    copies = upstream.copies()
    assert set(copies) == set(addresses)  # nothing lost
    assert sum(copies.values()) - len(addresses) <= kills, copies
    # One recorded try per message: the copies sent by a killed worker left no outcome
    # behind, and nothing was recorded twice.
    assert Attempt.objects.count() == len(addresses)
    assert set(Recipient.objects.values_list("attempts", flat=True)) == {1}


def test_a_message_that_outlasts_its_lease_keeps_it_while_in_flight(cast, upstream):
    upstream.hang_at = "data"  # the transaction takes as long as the test wants
    message = queue_message(cast.acme_smtp, ["bob@example.net"])
    proc = deliver_process(upstream, "--concurrency", "1", DELIVERY_LEASE_SECONDS="2")
    try:
        upstream.wait_for(lambda: len(upstream.data_started) == 1, timeout=30)
        time.sleep(5)  # more than two leases' worth

        # The worker still holds the recipient: no one else may take it.
        assert queue.claim("another-worker", 10) == []
        upstream.release()
        wait_until(lambda: delivered_addresses() == {"bob@example.net"})
    finally:
        stop(proc)

    assert upstream.copies() == {"bob@example.net": 1}
    rcpt = message.recipients.get()
    assert rcpt.attempts == 1
    assert rcpt.lease_owner == ""


def test_the_messages_of_one_claimed_batch_are_sent_side_by_side(cast, upstream):
    upstream.hang_at = "data"  # a slow upstream: every DATA waits
    addresses = [f"user{i}@example.net" for i in range(4)]
    for address in addresses:
        queue_message(cast.acme_smtp, [address])
    # One claim takes all four (a batch holds up to 20); the worker's four tasks share it.
    proc = deliver_process(upstream, "--concurrency", "4")
    try:
        upstream.wait_for(lambda: len(upstream.data_started) == 4, timeout=30)
        upstream.release()
        wait_until(lambda: delivered_addresses() == set(addresses))
    finally:
        stop(proc)

    assert upstream.copies() == dict.fromkeys(addresses, 1)


def test_a_worker_killed_holding_leases_hands_them_over_on_expiry_and_only_its_mid_send_messages_go_twice(
    cast, upstream
):
    """`kill -9` of a worker holding a claimed batch — three messages mid-send (their DATA
    taken by the upstream, the reply not yet back), the rest leased and waiting — and a
    second worker already running: the second one takes none of them while the dead
    worker's leases run, then delivers every one exactly once. The upstream ends with
    one copy of each message, and a second copy of exactly the three that were mid-send
    (the dead worker cannot know they arrived); nothing is lost or recorded twice."""
    addresses = [f"user{i}@example.net" for i in range(12)]
    for address in addresses:
        queue_message(cast.acme_smtp, [address])
    # The dead worker's upstream takes each message at once and would answer much later.
    first = FakeUpstream().start()
    first.data_delay = 30
    doomed = deliver_process(first, "--concurrency", "3", DELIVERY_LEASE_SECONDS="4")
    survivor = None
    try:
        first.wait_for(lambda: len(first.data_started) == 3, timeout=60)
        # One claim leased all twelve: three in flight, nine waiting.
        owners = set(Recipient.objects.values_list("lease_owner", flat=True))
        assert len(owners) == 1 and "" not in owners, owners
        doomed_owner = owners.pop()
        # The second worker (another upstream: which copy came from whom stays visible).
        survivor = deliver_process(upstream, "--concurrency", "3", DELIVERY_LEASE_SECONDS="4")
        doomed.kill()
        doomed.wait(10)
        # The dead worker's last renewal is when each lease ends.
        lease_end = {r.address: r.lease_until for r in Recipient.objects.all()}
        assert set(Recipient.objects.values_list("lease_owner", flat=True)) == {doomed_owner}
        wait_until(lambda: len(delivered_addresses()) == len(addresses))
    finally:
        stop(doomed)
        if survivor is not None:
            stop(survivor)
        first.stop()

    in_flight = {rcpts[0] for _, rcpts in first.data_started}
    assert len(in_flight) == 3
    # The dead worker's upstream got exactly the three mid-send messages, once each…
    assert first.copies() == dict.fromkeys(in_flight, 1)
    # …and the survivor delivered each of the twelve exactly once.
    assert upstream.copies() == dict.fromkeys(addresses, 1)
    # Only after the dead worker's lease on it had run out.
    for attempt in Attempt.objects.select_related("recipient"):
        assert attempt.started >= lease_end[attempt.recipient.address], attempt.recipient.address
    # One recorded try each, by the survivor; no lease left behind.
    assert Attempt.objects.count() == len(addresses)
    assert set(Recipient.objects.values_list("attempts", flat=True)) == {1}
    assert set(Recipient.objects.values_list("lease_owner", flat=True)) == {""}
