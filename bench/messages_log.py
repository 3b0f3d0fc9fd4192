"""Seed a large messages log and time the console's messages-log page.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_bench \\
        .venv/bin/python bench/messages_log.py [--messages 500000] [--reuse] [--runs 9]

Seeds one account ("Bench Corp") with N messages spread over 60 days, 1-3 recipients
each (mostly delivered; some deferred, failed, queued, cancelled), from five SMTP+ users
of very different volumes, plus a second account so every query has to scope. PostgreSQL
is fed with COPY in batches, other databases with bulk_create. Message bodies are left
empty: the log never reads them (a real body is TOASTed out of the row anyway).

`--reuse` keeps rows an earlier run seeded (and only adds what is missing); without it
the bench accounts' messages are deleted and seeded again.

Then it times the page's server time with Django's test Client, logged in as a member
(several runs, median): first page, filtered by SMTP+ user, filtered by recipient status,
and an older page deep in the log. Target: each under 200 ms on PostgreSQL.
`--explain` prints the database's plan for each case's main query.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import prepare_database

TARGET_MS = 200.0
BATCH = 20_000
SPAN = timedelta(days=60)
# (name, share of the messages, priority)
USERS = [("Web shop", 0.50, 2), ("CRM", 0.25, 3), ("Newsletter", 0.15, 5),
         ("Billing", 0.08, 1), ("Monitoring", 0.02, 3)]
STATUSES = [("delivered", 0.90), ("failed", 0.04), ("deferred", 0.03), ("queued", 0.02),
            ("cancelled", 0.01)]
MESSAGE_COLUMNS = ["id", "account_id", "smtp_user_id", "queue_id", "created", "envelope_from",
                   "header_from", "subject", "message_id", "size", "client_ip", "client_helo",
                   "port", "smtputf8", "pruned", "dsn_ret", "dsn_envid"]
RECIPIENT_COLUMNS = ["id", "message_id", "account_id", "smtp_user_id", "address", "status",
                     "priority", "created", "attempts", "next_attempt_at", "finished_at",
                     "last_code", "last_enhanced", "last_text", "last_reason", "fail_reason",
                     "lease_owner", "notify", "orcpt", "dsn_due"]


def setup_accounts() -> tuple[Any, Any, list[Any], Any]:
    from django.contrib.auth.models import User

    from accounts.models import Account, Membership, Role, SmtpUser

    account, _ = Account.objects.get_or_create(slug="bench-corp", defaults={"name": "Bench Corp"})
    other, _ = Account.objects.get_or_create(slug="bench-other", defaults={"name": "Bench Other"})
    member, created = User.objects.get_or_create(username="bench@bench.test")
    if created:
        member.set_unusable_password()
        member.save()
    Membership.objects.get_or_create(account=account, user=member, defaults={"role": Role.VIEWER})
    users = []
    for name, _share, priority in USERS:
        user = SmtpUser.objects.filter(account=account, name=name).first()
        if user is None:
            user = SmtpUser(account=account, name=name, priority=priority,
                            username=f"bench-{name.lower().replace(' ', '-')}")
            user.set_password("bench-password-not-secret-0123456789")
            user.save()
        users.append(user)
    outsider = SmtpUser.objects.filter(account=other).first()
    if outsider is None:
        outsider = SmtpUser(account=other, name="Other app", username="bench-other-app")
        outsider.set_password("bench-password-not-secret-0123456789")
        outsider.save()
    return account, member, users, outsider


def delete_bench_rows(account_ids: list[int]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("relay_recipient", "relay_message"):
            cursor.execute(f"DELETE FROM {table} WHERE account_id = ANY(%s)"  # noqa: S608
                           if connection.vendor == "postgresql" else
                           f"DELETE FROM {table} WHERE account_id IN ({','.join(['%s'] * len(account_ids))})",  # noqa: S608
                           [account_ids] if connection.vendor == "postgresql" else account_ids)


def next_ids() -> tuple[int, int]:
    from django.db.models import Max

    from relay.models import Message, Recipient

    return ((Message.objects.aggregate(m=Max("id"))["m"] or 0) + 1,
            (Recipient.objects.aggregate(m=Max("id"))["m"] or 0) + 1)


def make_rows(count: int, account: Any, users: list[Any], start_id: int, start_rid: int,
              rng: random.Random, position: int, total: int,
              ) -> tuple[list[tuple], list[tuple]]:
    """Rows for messages number `position`… of `total`: time grows with the id, as in
    a real log, from 60 days ago to now."""
    first = datetime.now(UTC) - SPAN
    weights = [share for _n, share, _p in USERS]
    statuses, status_weights = zip(*STATUSES, strict=True)
    messages: list[tuple] = []
    recipients: list[tuple] = []
    rid = start_rid
    for i in range(count):
        mid = start_id + i
        user = rng.choices(users, weights)[0]
        created = first + SPAN * ((position + i) / max(total, 1))
        sender = f"{rng.choice(['orders', 'news', 'noreply', 'billing'])}@bench.test"
        subject = f"Order {mid} confirmed" if mid % 7 else "=?utf-8?Q?I love you =E2=99=A5?="
        messages.append((mid, account.pk, user.pk, f"B{mid:011d}", created, sender, sender,
                         subject, f"<{mid}@bench.test>", rng.randrange(900, 40_000),
                         "192.0.2.10", "app.bench.test", 587, False, False, "", ""))
        for n in range(rng.choice((1, 1, 1, 2, 3))):
            status = rng.choices(statuses, status_weights)[0]
            final = status in ("delivered", "failed", "cancelled")
            code, enhanced, text = {
                "failed": (550, "5.1.1", "User unknown"),
                "deferred": (451, "4.7.1", "Greylisted, try again later"),
            }.get(status, (250 if status == "delivered" else None, "", ""))
            recipients.append((rid, mid, account.pk, user.pk, f"r{mid % 5000}.{n}@example.net",
                               status, user.priority, created, 1 if code else 0,
                               created + timedelta(minutes=5), created if final else None,
                               code, enhanced, text,
                               {"failed": "rejected", "deferred": "temporary"}.get(status, ""),
                               "cancelled" if status == "cancelled" else "",
                               "", "", "", ""))
            rid += 1
    return messages, recipients


def write_rows(messages: list[tuple], recipients: list[tuple]) -> None:
    from django.db import connection, transaction

    from relay.models import Message, Recipient

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as wrapper:
                cursor = wrapper.cursor
                for table, columns, rows in (("relay_message", MESSAGE_COLUMNS, messages),
                                             ("relay_recipient", RECIPIENT_COLUMNS, recipients)):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        else:
            Message.objects.bulk_create(
                [Message(**dict(zip(MESSAGE_COLUMNS, r, strict=True))) for r in messages],
                batch_size=500)
            Recipient.objects.bulk_create(
                [Recipient(**dict(zip(RECIPIENT_COLUMNS, r, strict=True))) for r in recipients],
                batch_size=500)


def fix_sequences() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in ("relay_message", "relay_recipient"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
            cursor.execute(f"VACUUM ANALYZE {table}")


def seed(account: Any, users: list[Any], target: int, rng: random.Random) -> int:
    from relay.models import Message

    have = Message.objects.filter(account=account).count()
    missing = max(0, target - have)
    started = time.perf_counter()
    while missing:
        n = min(BATCH, missing)
        mid, rid = next_ids()
        write_rows(*make_rows(n, account, users, mid, rid, rng, target - missing, target))
        missing -= n
        done = target - missing
        print(f"  seeded {done - have:,}/{target - have:,} messages", end="\r", flush=True)
    if target > have:
        print(f"\n  seeding took {time.perf_counter() - started:.1f} s")
    fix_sequences()
    return Message.objects.filter(account=account).count()


def timed(client: Any, url: str, params: dict[str, Any], runs: int) -> tuple[float, Any]:
    response = client.get(url, params)  # warm-up: connection, caches, template loading
    assert response.status_code == 200, response.status_code
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), response


def explain(client: Any, url: str, params: dict[str, Any]) -> None:
    """Print the plan of the page's message and recipient queries, as executed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url, params)
    prefix = ("EXPLAIN (ANALYZE, BUFFERS) " if connection.vendor == "postgresql"
              else "EXPLAIN QUERY PLAN ")
    for query in queries:
        sql = query["sql"]
        if sql.startswith("SELECT") and ('FROM "relay_message"' in sql
                                         or 'FROM "relay_recipient"' in sql):
            with connection.cursor() as cursor:
                cursor.execute(prefix + sql)
                plan = "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
            print("    " + plan.replace("\n", "\n    "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--other", type=int, default=20_000,
                        help="messages of a second account (default 20,000)")
    parser.add_argument("--reuse", action="store_true", help="keep rows seeded earlier")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--explain", action="store_true", help="print each main query's plan")
    parser.add_argument("--fail-over-target", action="store_true",
                        help="exit 1 when a counted page is over the target (figures are "
                             "only printed otherwise)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    prepare_database(meant_for_postgres=False)
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from relay.console.filters import encode_cursor
    from relay.models import Message

    account, member, users, outsider = setup_accounts()
    rng = random.Random(args.seed)
    if not args.reuse:
        delete_bench_rows([account.pk, outsider.account_id])
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    count = seed(account, users, args.messages, rng)
    seed(outsider.account, [outsider] * len(USERS), args.other, rng)
    print(f"messages in the bench account: {count:,}")

    client = Client(HTTP_HOST="localhost")
    client.force_login(member)
    url = reverse("relay:messages")
    small_user = users[-1]
    # A cursor 4,000 messages (80 pages) deep, as a user paging back would hold.
    deep = Message.objects.filter(account=account).order_by("-created", "-id")[
        min(4000, count - 1)
    ]
    # (label, query, counts toward the target): the target is for the first page and
    # the user and status filters; the others are printed for information.
    cases = [
        ("first page", {}, True),
        (f"filtered by SMTP+ user ({small_user.name}, 2%)", {"user": small_user.pk}, True),
        (f"filtered by SMTP+ user ({users[0].name}, 50%)", {"user": users[0].pk}, True),
        ("filtered by status failed (4%)", {"status": "failed"}, True),
        ("filtered by status cancelled (1%)", {"status": "cancelled"}, True),
        ("older page ~80 pages deep", {"before": encode_cursor(deep.created, deep.pk)}, False),
        ("sender equals (25%)", {"sender": "news@bench.test", "sender_match": "equals"}, False),
        ("recipient contains (rare)", {"recipient": "r4999.2@"}, False),
        ("sender contains, no match (full scan)", {"sender": "nobody@"}, False),
    ]
    print(f"\nmessages-log page, server time (median of {args.runs} runs):")
    worst = 0.0
    for label, params, counted in cases:
        median, response = timed(client, url, params, args.runs)
        rows = response.content.decode().count('class="subject"')
        if counted:
            worst = max(worst, median)
        verdict = ("under" if median < TARGET_MS else "OVER") + f" {TARGET_MS:.0f} ms"
        print(f"  {label:<45} {median:7.1f} ms  ({rows:2d} rows)  "
              f"{verdict if counted else '(information)'}")
        if args.explain:
            explain(client, url, params)
    print(f"\nslowest of first page / user / status: {worst:.1f} ms "
          f"({'all under' if worst < TARGET_MS else 'NOT all under'} {TARGET_MS:.0f} ms)")
    return 1 if args.fail_over_target and worst >= TARGET_MS else 0


if __name__ == "__main__":
    sys.exit(main())
