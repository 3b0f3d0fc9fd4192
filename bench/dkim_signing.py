"""The cost of DKIM signing: per message, and end to end, signed against unsigned in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_dkim_bench \\
        .venv/bin/python bench/dkim_signing.py [--clients 20] [--messages 50] [--rounds 2]

1. Per message, in this process: what the delivery worker adds for a signed message —
   finding its key (`relay.delivery.signing`, keys cached) and signing it
   (`MessageSigner`) — for a 2 KB message and a 100 KB one with an attachment, with an
   RSA-2048 key and with RSA plus Ed25519 (the figures a worker adds per message; part 2
   is the same-run comparison with unsigned delivery).
2. End to end, as bench/end_to_end.py (our relay with its delivery worker, a sink
   upstream, `--clients` clients on kept-open sessions): the same load unsigned (the
   sender's domain is not a sending domain) and signed (it is one, with an active key),
   in alternating rounds. Accepting is not affected — messages are signed at delivery —
   so the difference shows in delivered/s and in the time the queue takes to drain.

The machine is shared and noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SENDER, cleanup, make_body, prepare_database, setup_user  # noqa: E402
from end_to_end import Result, Sink, run_ours  # noqa: E402


def attachment_message(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Bench <{SENDER}>"
    message["To"] = "rcpt@example.net"
    message["Subject"] = "bench with an attachment"
    message.set_content("The report is attached.\n")
    message.add_attachment(os.urandom(size), maintype="application", subtype="pdf",
                           filename="report.pdf")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def per_call_ms(fn: Callable[[], object], seconds: float = 1.0) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1000


def enable_signing(account_id: int, ed25519: bool) -> None:
    """Make bench.test a verified sending domain of the bench account with active keys
    (no DNS needed to sign)."""
    from django.utils import timezone

    from accounts.domains.dkim import encrypt_private_key, generate_key
    from accounts.models import DkimKey, DkimKeyState, DomainStatus, SendingDomain

    domain, _ = SendingDomain.objects.update_or_create(
        account_id=account_id, domain="bench.test",
        defaults={"token": "bench", "status": DomainStatus.VERIFIED, "verified_how": "operator",
                  "verified_at": timezone.now()},
    )
    for algorithm in ("rsa", "ed25519") if ed25519 else ("rsa",):
        existing = domain.dkim_keys.filter(algorithm=algorithm)
        if existing.exists():  # the key the domain got when it was added: as if published
            existing.update(state=DkimKeyState.ACTIVE, activated_at=timezone.now())
            continue
        key = generate_key(algorithm)  # type: ignore[arg-type]
        DkimKey.objects.create(
            sending_domain=domain, selector=f"bench-{algorithm}", algorithm=algorithm,
            private_key_encrypted=encrypt_private_key(key.private_key),
            public_key=key.public_key, state=DkimKeyState.ACTIVE, activated_at=timezone.now(),
        )


def disable_signing(account_id: int) -> None:
    """Keep bench.test a verified sending domain (its users may send as it) but with no
    active key: its mail goes out unsigned."""
    from accounts.models import DkimKey, DkimKeyState

    DkimKey.objects.filter(sending_domain__account_id=account_id,
                           sending_domain__domain="bench.test").update(
        state=DkimKeyState.PENDING, activated_at=None)


def micro(account_id: int) -> None:
    from relay.delivery import signing

    messages = {"2 KB": make_body(2048), "100 KB attachment": attachment_message(75_000)}
    print("\nadded per message by the delivery worker (ms of CPU)")
    print(f"{'message':<20}{'find key':>10}{'sign RSA':>10}{'sign RSA+Ed25519':>18}")
    for label, raw in messages.items():
        enable_signing(account_id, ed25519=False)
        signing.keys.clear()
        find = per_call_ms(lambda raw=raw: signing.signer_for(account_id, raw))
        rsa_signer = signing.signer_for(account_id, raw)
        assert rsa_signer is not None
        # A new bytes object each time, so the signer's memory of its last message is no help.
        rsa = per_call_ms(lambda raw=raw, s=rsa_signer: s(bytes(bytearray(raw))))
        enable_signing(account_id, ed25519=True)
        signing.keys.clear()
        both_signer = signing.signer_for(account_id, raw)
        assert both_signer is not None and len(both_signer.keys) == 2
        both = per_call_ms(lambda raw=raw, s=both_signer: s(bytes(bytearray(raw))))
        disable_signing(account_id)
        print(f"{label:<20}{find:>10.3f}{rsa:>10.3f}{both:>18.3f}")


def end_to_end(account_id: int, username: str, password: str, args: argparse.Namespace
               ) -> None:
    from django.db import connection

    body = make_body(args.size)
    sink = Sink()
    results: dict[str, list[Result]] = {"unsigned": [], "signed": []}
    from relay.delivery import signing

    try:
        # The first run after the database was set up is slower for both: not counted.
        run_ours(sink, username, password, args, body)
        for _ in range(args.rounds):
            for name in ("unsigned", "signed"):
                if name == "signed":
                    enable_signing(account_id, ed25519=False)
                else:
                    disable_signing(account_id)
                signing.keys.clear()
                # What the worker will find for these messages: a key, or none.
                assert (signing.signer_for(account_id, body) is not None) == (name == "signed")
                connection.close()
                results[name].append(run_ours(sink, username, password, args, body))
    finally:
        sink.stop()
        disable_signing(account_id)
    print(f"\nend to end: {args.clients} clients (AUTH, kept-open sessions), {args.size}-byte "
          f"messages, {args.clients * args.messages} per round, {args.rounds} round(s) each, "
          f"--processes {args.processes}, sink: {sink.kind}")
    print(f"{'':<12}{'accepted/s':>11}{'delivered/s':>12}{'queue empty after':>19}{'errors':>8}")
    rates = {}
    for name, rounds in results.items():
        n = sum(r.messages for r in rounds)
        acc = n / sum(r.accept_seconds for r in rounds)
        dlv = n / sum(r.deliver_seconds for r in rounds)
        drain = sum(r.drain_seconds for r in rounds) / len(rounds)
        rates[name] = (acc, dlv)
        print(f"{name:<12}{acc:>11.0f}{dlv:>12.0f}{drain:>17.2f} s"
              f"{sum(r.errors for r in rounds):>8}")
    print(f"{'signed/unsigned':<12}{rates['signed'][0] / rates['unsigned'][0]:>11.2f}"
          f"{rates['signed'][1] / rates['unsigned'][1]:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="per client")
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument("--processes", type=int, default=1, help="relay processes")
    parser.add_argument("--concurrency", type=int, default=8, help="delivery tasks")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--timeout", type=float, default=300, help="max wait for delivery")
    parser.add_argument("--micro-only", action="store_true", help="skip the end-to-end part")
    args = parser.parse_args()

    database = prepare_database()
    from django.db import connection

    from relay.models import PENDING_STATUSES, Recipient

    backlog = Recipient.objects.filter(status__in=PENDING_STATUSES).count()
    if backlog and not args.micro_only:
        sys.exit(f"The database already has {backlog} queued or deferred recipient(s): "
                 "point DATABASE_URL at a database of its own for this benchmark.")
    account_id, username, password = setup_user()
    print(f"database: {database}")
    try:
        micro(account_id)
        if not args.micro_only:
            connection.close()
            end_to_end(account_id, username, password, args)
    finally:
        cleanup(account_id)


if __name__ == "__main__":
    main()
