"""Seed millions of messages in PostgreSQL and time the dashboard and the log's searches.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_dash \\
        .venv/bin/python bench/dashboard.py [--messages 5000000] [--reuse] [--runs 7]

Seeds one account ("Bench Corp", the five SMTP+ users of bench/messages_log.py) with N
messages spread evenly over the last 30 days, 1-3 recipients each (90 % delivered, 4 %
failed, 3 % deferred with a deferred try, 2 % queued, 1 % cancelled; nothing older than
two days is still pending: those failed or were delivered) at about a hundred
recipient domains of very different sizes, relay events, and a second account with 2 %
as much, so every query has to scope. Rows are made by the database itself
(INSERT … SELECT over generate_series), the trigram indexes rebuilt afterwards, and
when the database user is a superuser the foreign-key checks are skipped (the rows are
consistent by construction): 5 million messages then take minutes, not hours.

Then, in the same run:
- the rollup: folding every hour of the 30 days from scratch, and one more hour;
- the dashboard's server time (Django's test Client, median of --runs) for 24 h, 7 days
  and 30 days, with the rollups, and the same page with every hour counted live (the
  baseline: what the statistics would cost without rollups);
- the messages log's substring searches (sender contains, recipient contains, recipient
  domain) with the trigram indexes, and without them (dropped inside a transaction that
  is rolled back: the baseline).
Target: the dashboard under 200 ms at 5 million messages for every period.
"""

from __future__ import annotations

import argparse
import html
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from common import prepare_database

TARGET_MS = 200.0
LINK_TARGET_MS = 500.0  # a log page a dashboard link opens
DAYS = 30
# As relay/migrations/0008 makes them.
TRIGRAM_SQL = (("msg_sender_trgm", "relay_message", "envelope_from"),
               ("rcpt_address_trgm", "relay_recipient", "address"))
TRIGRAM_INDEXES = tuple(name for name, _table, _column in TRIGRAM_SQL)

# Users' shares of the messages: 50, 25, 15, 8, 2 % (bench/messages_log.py's USERS).
MESSAGES_SQL = """
INSERT INTO relay_message (id, account_id, smtp_user_id, queue_id, created, envelope_from,
    header_from, subject, message_id, size, client_ip, client_helo, port, smtputf8, pruned,
    dsn_ret, dsn_envid)
SELECT %(base)s + g, %(account)s,
    (%(users)s::int[])[CASE WHEN h < 50 THEN 1 WHEN h < 75 THEN 2 WHEN h < 90 THEN 3
                            WHEN h < 98 THEN 4 ELSE 5 END],
    'D' || %(account)s || '-' || (%(base)s + g),
    %(start)s + (g::float8 / %(n)s) * %(span)s,
    s.sender, s.sender, 'Order ' || g || ' confirmed', '<' || g || '@bench.test>',
    900 + (g * 7919) %% 39000, ('192.0.2.' || (1 + g %% 20))::inet, 'app.bench.test', 587,
    false, false, '', ''
FROM (SELECT g, (g * 2654435761) %% 100 AS h,
             (ARRAY['orders','news','noreply','billing'])[(1 + g %% 4)::int] || '@bench.test' AS sender
      FROM generate_series(1::bigint, %(n)s) g) s
"""

# 1, 1, 1, 2 or 3 recipients; the domain's rank skewed (mail0 the largest);
# the status from a hash of (message, k).
RECIPIENTS_SQL = """
INSERT INTO relay_recipient (message_id, account_id, smtp_user_id, address, status, priority,
    created, attempts, next_attempt_at, finished_at, last_code, last_enhanced, last_text,
    last_reason, fail_reason, lease_owner, notify, orcpt, dsn_due)
SELECT m.id, m.account_id, m.smtp_user_id,
    'r' || (m.id %% 5000) || '.' || k || '@mail' || floor(power(r.d / 10000.0, 3) * 100)::int
        || '.example',
    r.status, 3, m.created, CASE WHEN r.status = 'queued' THEN 0 ELSE 1 END,
    m.created + interval '5 minutes',
    CASE WHEN r.status IN ('delivered', 'failed', 'cancelled')
         THEN m.created + (r.h %% 30) * interval '1 minute' END,
    CASE r.status WHEN 'delivered' THEN 250 WHEN 'failed' THEN 550 WHEN 'deferred' THEN 451 END,
    CASE r.status WHEN 'failed' THEN '5.1.1' WHEN 'deferred' THEN '4.7.1' ELSE '' END,
    CASE r.status WHEN 'failed' THEN 'User unknown' WHEN 'deferred' THEN 'Greylisted' ELSE '' END,
    CASE r.status WHEN 'failed' THEN 'rejected' WHEN 'deferred' THEN 'temporary' ELSE '' END,
    CASE r.status WHEN 'failed' THEN 'rejected' WHEN 'cancelled' THEN 'cancelled' ELSE '' END,
    '', '', '', ''
FROM relay_message m
CROSS JOIN LATERAL generate_series(1, CASE m.id %% 5 WHEN 3 THEN 2 WHEN 4 THEN 3 ELSE 1 END) k
CROSS JOIN LATERAL (
    SELECT ((m.id::bigint * 31 + k) * 2654435761) %% 100 AS h,
           ((m.id::bigint * 17 + k) * 40503) %% 10000 AS d,
           CASE WHEN ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 90 THEN 'delivered'
                WHEN ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 94 THEN 'failed'
                -- nothing stays pending for days: older ones expired or went out
                WHEN m.created < now() - interval '2 days'
                     AND ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 97 THEN 'failed'
                WHEN m.created < now() - interval '2 days'
                     AND ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 99 THEN 'delivered'
                WHEN ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 97 THEN 'deferred'
                WHEN ((m.id::bigint * 31 + k) * 2654435761) %% 100 < 99 THEN 'queued'
                ELSE 'cancelled' END AS status) r
WHERE m.account_id = %(account)s AND m.id > %(base)s
"""

ATTEMPTS_SQL = """
INSERT INTO relay_attempt (recipient_id, started, duration_ms, upstream, code, enhanced, text,
    outcome, reason)
SELECT id, created + interval '1 minute', 40, 'mx.example', 451, '4.7.1', 'Greylisted',
    'deferred', 'temporary'
FROM relay_recipient WHERE account_id = %(account)s AND status = 'deferred'
"""

EVENTS_SQL = """
INSERT INTO relay_relayevent (account_id, smtp_user_id, kind, created, last_seen, count,
    client_ip, port, username, address, reason, reply)
SELECT %(account)s, (%(users)s::int[])[(1 + g %% 5)::int],
    (ARRAY['auth_failed','sender_rejected','rate_limited','from_rejected'])[(1 + g %% 4)::int],
    t, t, 1 + g %% 7, ('198.51.100.' || (g %% 200))::inet, 587, 'bench', 'x@evil.test',
    'bench reason ' || (g %% 9), '550 5.7.1 no'
FROM (SELECT g, %(start)s + (g::float8 / %(n)s) * %(span)s AS t
      FROM generate_series(1::bigint, %(n)s) g) s
"""


def execute(sql: str, params: dict[str, Any]) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def superuser() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    return bool(row and row[0])


def seed(account: Any, users: list[Any], n: int, start: datetime | None = None,
         span: timedelta = timedelta(days=DAYS)) -> None:
    """Add `n` messages (and their recipients, deferred tries, events) to `account`,
    spread evenly over `span` from `start` (default: the last DAYS days)."""
    from django.db import transaction
    from django.db.models import Max
    from django.utils import timezone

    from relay.models import Message

    if n <= 0:
        return
    base = Message.objects.aggregate(m=Max("id"))["m"] or 0
    start = start or timezone.now() - span
    params = {"account": account.pk, "users": [u.pk for u in users], "n": n, "base": base,
              "start": start, "span": span}
    started = time.perf_counter()
    with transaction.atomic():
        if superuser():
            # The rows are consistent by construction: skip the foreign-key checks, which
            # otherwise run row by row at COMMIT and take longer than the inserts.
            execute("SET LOCAL session_replication_role = replica", {})
        execute(MESSAGES_SQL, params)
        recipients = execute(RECIPIENTS_SQL, params)
        execute(ATTEMPTS_SQL, params)
        execute(EVENTS_SQL, {**params, "n": max(n // 100, 1)})
    print(f"  seeded {n:,} messages, {recipients:,} recipients for {account.name} "
          f"in {time.perf_counter() - started:.1f} s")


def reset(account_ids: list[int]) -> None:
    from relay.models import DomainHourlyStat, HourlyStat, RollupState

    for table in ("relay_attempt", "relay_recipient", "relay_message", "relay_relayevent"):
        if table == "relay_attempt":
            sql = ("DELETE FROM relay_attempt WHERE recipient_id IN "
                   "(SELECT id FROM relay_recipient WHERE account_id = ANY(%(a)s))")
        else:
            sql = f"DELETE FROM {table} WHERE account_id = ANY(%(a)s)"  # noqa: S608
        execute(sql, {"a": account_ids})
    HourlyStat.objects.all().delete()
    DomainHourlyStat.objects.all().delete()
    RollupState.objects.all().delete()


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("relay_message", "relay_recipient", "relay_attempt", "relay_relayevent",
                      "relay_hourlystat", "relay_domainhourlystat"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def median_ms(fn: Callable[[], Any], runs: int, *, warm_up: bool = True) -> float:
    if warm_up:
        fn()  # connection, caches, template loading
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextmanager
def rolled_back() -> Iterator[None]:
    """Changes made inside are undone (the baselines drop things only there)."""
    from django.db import transaction

    class Undo(Exception):
        pass

    try:
        with transaction.atomic():
            yield
            raise Undo
    except Undo:
        pass


def get(client: Any, url: str, params: dict[str, Any]) -> Callable[[], Any]:
    def fetch() -> Any:
        response = client.get(url, params)
        assert response.status_code == 200, response.status_code
        return response
    return fetch


def explain(client: Any, url: str, params: dict[str, Any]) -> None:
    """Count the queries one page runs and print each one's plan (EXPLAIN ANALYZE)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params)  # warm-up
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        client.get(url, params)
        took = (time.perf_counter() - started) * 1000
    print(f"\n{url}?{urlencode(params)}: {len(queries)} queries, "
          f"{sum(float(q['time']) for q in queries) * 1000:.1f} ms of {took:.1f} ms "
          "in the database (as timed by Django)")
    for n, query in enumerate(queries, 1):
        sql = query["sql"]
        print(f"\n  [{n}] {float(query['time']) * 1000:.1f} ms  {sql[:300]}")
        if not sql.startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        print("      " + plan.replace("\n", "\n      "))


def links(client: Any, url: str, params: dict[str, Any]) -> list[str]:
    """The filtered log links (messages log, relay events) a page renders."""
    from django.urls import reverse

    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    pages = (reverse("relay:messages") + "?", reverse("relay:events") + "?")
    found = (html.unescape(h) for h in re.findall(r'href="([^"]+)"', response.content.decode()))
    return sorted({h for h in found if h.startswith(pages)})


def describe(href: str) -> str:
    path, _, query = href.partition("?")
    params = dict(parse_qsl(query))
    span = ""
    if "since" in params and "until" in params:
        since = datetime.fromisoformat(params.pop("since"))
        until = datetime.fromisoformat(params.pop("until"))
        span = f"{(until - since) / timedelta(hours=1):g} h from {since:%m-%d %H:%M}"
    page = "events" if "events" in path else "log"
    return " ".join([page, span] + [f"{k}={v}" for k, v in params.items()])


def time_links(client: Any, dashboard: str, periods: tuple[str, ...], runs: int,
               again: int = 6) -> float:
    """Open every filtered log link each period's dashboard renders, once; then the
    slowest again (median of `runs`). The slowest median."""
    slowest = 0.0
    for period in periods:
        hrefs = links(client, dashboard, {"period": period})
        once = {h: median_ms(get(client, h, {}), 1, warm_up=False) for h in hrefs}
        ordered = sorted(once, key=once.__getitem__, reverse=True)
        print(f"\nlinks of the {period} dashboard: {len(hrefs)} log pages, opened once each: "
              f"median {statistics.median(once.values()):.1f} ms, "
              f"slowest {once[ordered[0]]:.1f} ms; the slowest {again} again "
              f"(median of {runs}):")
        for href in ordered[:again]:
            took = median_ms(get(client, href, {}), runs, warm_up=False)
            slowest = max(slowest, took)
            verdict = f"{'under' if took < LINK_TARGET_MS else 'OVER'} {LINK_TARGET_MS:.0f} ms"
            print(f"  {describe(href):<58} {took:7.1f} ms  {verdict}")
    return slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--other", type=int, default=None,
                        help="messages of a second account (default 2 %% of --messages)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep rows seeded (and hours folded) by an earlier run")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed (what is missing) and fold the rollups, then stop: "
                             "later runs with --reuse time the pages")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the baselines (every hour counted live, no trigram "
                             "indexes): only the pages as they are")
    parser.add_argument("--links-again", type=int, default=6,
                        help="how many of each period's slowest links to time again")
    parser.add_argument("--explain", action="store_true",
                        help="EXPLAIN ANALYZE every query of the 30-day dashboard")
    args = parser.parse_args()

    if prepare_database() != "postgresql":
        print("this bench needs PostgreSQL (DATABASE_URL=postgres://…)", file=sys.stderr)
        return 2
    from django.db import connection
    from django.db.models import Max
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone
    from messages_log import setup_accounts

    from relay import rollup
    from relay.console.stats import moment
    from relay.models import Message, RollupState

    account, member, users, outsider = setup_accounts()
    other = args.other if args.other is not None else args.messages // 50
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    if not args.reuse:
        reset([account.pk, outsider.account_id])
    missing = args.messages - Message.objects.filter(account=account).count()
    rebuild = missing > 100_000  # a GIN index is built faster at once than row by row
    if rebuild:
        execute(";".join(f'DROP INDEX IF EXISTS "{name}"' for name in TRIGRAM_INDEXES), {})
    seed(account, users, missing)
    seed(outsider.account, [outsider] * 5,
         other - Message.objects.filter(account=outsider.account).count())
    if args.reuse and not rebuild:
        # The time since the earlier run, at the same rate: the current hour and the
        # last 24 hours are as full as right after seeding.
        for acct, senders, total in ((account, users, args.messages),
                                     (outsider.account, [outsider] * 5, other)):
            last = Message.objects.filter(account=acct).aggregate(m=Max("created"))["m"]
            if last is not None:
                gap = timezone.now() - last
                seed(acct, senders, int(total * (gap / timedelta(days=DAYS))), last, gap)
    if rebuild:
        started = time.perf_counter()
        for name, table, column in TRIGRAM_SQL:
            execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" '
                    f'USING gin (UPPER("{column}"::text) gin_trgm_ops)', {})
        print(f"  trigram indexes built in {time.perf_counter() - started:.1f} s")
    if missing or not args.reuse:
        vacuum()
    count = Message.objects.filter(account=account).count()
    print(f"messages in the bench account: {count:,} (all accounts: {Message.objects.count():,})")

    if args.reuse and RollupState.objects.exists():
        folded = rollup.fold_due()  # only what is due: the rows and rollups are kept
        print(f"\nrollup: kept from the earlier run, {len(folded)} hours added")
        folded = folded or [rollup.floor_hour(rollup.folded_until()) - rollup.HOUR]
    else:
        RollupState.objects.all().delete()
        started = time.perf_counter()
        folded = rollup.fold_due()
        took = time.perf_counter() - started
        print(f"\nrollup: {len(folded)} hours folded from scratch in {took:.1f} s "
              f"({1000 * took / max(len(folded), 1):.0f} ms an hour)")
    def fold_last_hour_again() -> None:
        rollup.refold_from(folded[-1])
        rollup.fold_due()

    print(f"rollup: one hour folded in {median_ms(fold_last_hour_again, 3):.0f} ms")
    vacuum()
    if args.seed_only:
        return 0

    client = Client(HTTP_HOST="localhost")
    client.force_login(member)
    dashboard = reverse("dashboard")
    periods = ("24h", "7d", "30d")
    if args.explain:
        explain(client, dashboard, {"period": "30d"})
    print(f"\ndashboard, server time (median of {args.runs}"
          + ("" if args.no_baselines else
             f"; without rollups: median of {args.baseline_runs}") + "):")
    # All the pages with rollups first: a baseline's full scans evict the caches.
    with_rollups = {p: median_ms(get(client, dashboard, {"period": p}), args.runs)
                    for p in periods}
    worst = max(with_rollups.values())
    for period in periods:
        fast = with_rollups[period]
        verdict = f"{'under' if fast < TARGET_MS else 'OVER'} {TARGET_MS:.0f} ms"
        if args.no_baselines:
            print(f"  {period:>4}: {fast:7.1f} ms with rollups  {verdict}")
            continue
        with rolled_back():
            RollupState.objects.all().delete()  # every hour counted live
            live = median_ms(get(client, dashboard, {"period": period}), args.baseline_runs,
                             warm_up=False)
        print(f"  {period:>4}: {fast:7.1f} ms with rollups, {live:8.1f} ms counted live "
              f"(x{live / fast:.0f})  {verdict}")

    slowest_link = time_links(client, dashboard, periods, args.runs, args.links_again)

    log = reverse("relay:messages")
    now = timezone.now()
    day = {"since": moment(now - timedelta(hours=24)), "until": moment(now + rollup.HOUR)}
    searches = [
        ("sender contains, no match", {"sender": "nobody@"}),
        ("sender contains, 25 % match", {"sender": "news@"}),
        ("recipient contains, rare", {"recipient": "r4999.2@"}),
        ("recipient domain, small", {"domain": "mail99.example"}),
        ("recipient domain, small, last 24 h", {"domain": "mail99.example", **day}),
        ("domain failures, last 24 h", {"domain": "mail99.example", "event": "failed", **day}),
    ]
    # As above: every search with its index first, then the baselines.
    print(f"\nmessages log searches, server time (median of {args.runs}"
          + ("" if args.no_baselines else
             f"; without trigram indexes: median of {args.baseline_runs}") + "):")
    indexed_ms = {label: median_ms(get(client, log, params), args.runs)
                  for label, params in searches}
    for label, params in searches:
        indexed = indexed_ms[label]
        if args.no_baselines:
            print(f"  {label:<36} {indexed:7.1f} ms")
            continue
        fetch = get(client, log, params)
        with rolled_back(), connection.cursor() as cursor:
            for name in TRIGRAM_INDEXES:
                cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
            scanned = median_ms(fetch, args.baseline_runs, warm_up=False)
        print(f"  {label:<36} {indexed:7.1f} ms with trigram indexes, {scanned:8.1f} ms without")
    print(f"\nslowest dashboard with rollups: {worst:.1f} ms "
          f"({'under' if worst < TARGET_MS else 'NOT under'} {TARGET_MS:.0f} ms)")
    print(f"slowest page a dashboard link opens: {slowest_link:.1f} ms "
          f"({'under' if slowest_link < LINK_TARGET_MS else 'NOT under'} "
          f"{LINK_TARGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
