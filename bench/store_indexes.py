"""What the trigram search indexes cost the relay's store, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_dash \\
        .venv/bin/python bench/store_indexes.py [--groups 400 --group 10 --rounds 3]

Meant for the database bench/dashboard.py seeded (millions of rows, so the indexes have
their real size); it needs its "Bench Corp" account (run bench/dashboard.py first, or
bench/messages_log.py, against the same database).

Times the statements that store groups of 2 KB messages (1-3 recipients each) with the relay's own store
statement on PostgreSQL (`relay.smtp.store_pg`: one INSERT of a group's messages and
recipients, bound and prepared on the server as the relay does), in rounds that
alternate between the two modes:
- with the trigram indexes of migration 0010 (`msg_sender_trgm` on the sender,
  `rcpt_address_trgm` on the recipient addresses);
- without them: dropped at the start of the round.
Each round is one transaction that is rolled back at its end (the rows are never
kept, the dropped indexes come back), so the commits' WAL flushes — the same in both
modes — are not in the figures. A GIN index takes new entries into a pending list
and merges them into the index later (when the list passes `gin_pending_list_limit`,
or at a vacuum): each round with the indexes starts with that list empty and ends by
merging it (`gin_clean_pending_list`), timed apart, so the whole cost is counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from common import make_body, prepare_database

TRIGRAM_INDEXES = ("msg_sender_trgm", "rcpt_address_trgm")


def submissions(account: Any, users: list[Any], n: int, offset: int, body: bytes) -> list[Any]:
    from relay.smtp.accept import Submission

    subs = []
    for i in range(offset, offset + n):
        user = users[i % len(users)]
        subs.append(Submission(
            account_id=account.pk, smtp_user_id=user.pk, username=user.username,
            priority=user.priority,
            envelope_from=f"{('orders', 'news', 'noreply', 'billing')[i % 4]}@bench.test",
            recipients=[f"r{(i * 7 + k) % 5000}.{k}@mail{(i * 13 + k) % 100}.example"
                        for k in range((1, 1, 1, 2, 3)[i % 5])],
            raw=body, client_ip="192.0.2.10", client_helo="app.bench.test", port=587))
    return subs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=400, help="groups stored per round")
    parser.add_argument("--group", type=int, default=10, help="messages per group")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    args = parser.parse_args()

    if prepare_database() != "postgresql":
        print("this bench needs PostgreSQL (DATABASE_URL=postgres://…)", file=sys.stderr)
        return 2
    import psycopg
    from django.db import connections

    from accounts.models import Account, SmtpUser
    from relay.models import Message, Recipient
    from relay.smtp.accept import message_rows, recipient_rows
    from relay.smtp.store_pg import _json_rows, _store_sql

    account = Account.objects.filter(slug="bench-corp").first()
    if account is None:
        print("no Bench Corp account here: seed it with bench/dashboard.py first",
              file=sys.stderr)
        return 2
    users = list(SmtpUser.objects.filter(account=account).order_by("pk"))
    print(f"database {connections['default'].settings_dict['NAME']}: "
          f"{Message.objects.count():,} messages, {Recipient.objects.count():,} recipients")
    body = make_body(2048)
    sql = _store_sql("default")
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # Django's; ours is psycopg's own, as the relay's
    params["prepare_threshold"] = 2  # as the relay's connections (relay.smtp.store_pg)
    conn = psycopg.connect(**params)
    for table in ("relay_message", "relay_recipient"):  # the seeding set the ids itself
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                     f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
    conn.commit()

    def statement(subs: list[Any]) -> tuple[list[Any], int]:
        """The store statement's parameters for a group (as relay.smtp.store_pg makes them)."""
        messages, now = message_rows(subs, "relay.bench.test")
        queue_ids = {m["queue_id"]: m["queue_id"] for m in messages}
        recipients = recipient_rows(subs, messages, queue_ids, now)
        return [_json_rows("relay.Message", messages), [m["raw"] for m in messages],
                _json_rows("relay.Recipient", recipients)], len(recipients)

    per_message: dict[str, list[float]] = {"with": [], "without": []}
    merge_per_message: list[float] = []
    recipients = 0
    offset = 0
    # with, without, without, with, with, without…: the noise of a shared machine and
    # the tables' warming up hit both alike.
    order = [("with", "without") if r % 2 == 0 else ("without", "with")
             for r in range(args.rounds)]
    print(f"\n{args.groups} groups of {args.group} messages per round (ms per message: "
          "the store statements' time, as the relay runs them):")
    for pair in order:
        for mode in pair:
            with conn.transaction(force_rollback=True):
                if mode == "with":
                    for name in TRIGRAM_INDEXES:
                        conn.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])
                else:
                    for name in TRIGRAM_INDEXES:
                        conn.execute(f'DROP INDEX "{name}"')
                groups = [statement(submissions(account, users, args.group,
                                                offset + g * args.group, body))
                          for g in range(args.groups)]
                offset += args.groups * args.group
                recipients += sum(n for _params, n in groups)
                started = time.perf_counter()  # the statements only: what the index changes
                for group_params, _n in groups:
                    conn.execute(sql, group_params)
                took = time.perf_counter() - started
                n = args.groups * args.group
                per_message[mode].append(took * 1000 / n)
                line = f"  {mode + ' trigram indexes':<26} {took * 1000 / n:6.3f} ms"
                if mode == "with":
                    started = time.perf_counter()
                    for name in TRIGRAM_INDEXES:
                        conn.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])
                    merge = (time.perf_counter() - started) * 1000 / n
                    merge_per_message.append(merge)
                    line += f"  + {merge:.3f} ms merging the pending lists"
                print(line)
    conn.close()
    with_ms, without_ms = per_message["with"], per_message["without"]
    added = [w - wo for w, wo in zip(with_ms, without_ms, strict=True)]
    total = [a + m for a, m in zip(added, merge_per_message, strict=True)]
    print(f"\nper message stored ({recipients / offset:.2f} recipients each), "
          f"over {args.rounds} rounds per mode:")
    print(f"  without trigram indexes: {min(without_ms):.3f}–{max(without_ms):.3f} ms "
          f"(median {statistics.median(without_ms):.3f})")
    print(f"  with them:               {min(with_ms):.3f}–{max(with_ms):.3f} ms "
          f"(median {statistics.median(with_ms):.3f}); the round pairs' difference "
          f"{min(added):+.3f} to {max(added):+.3f} ms "
          f"({min(a / wo for a, wo in zip(added, without_ms, strict=True)):+.0%} to "
          f"{max(a / wo for a, wo in zip(added, without_ms, strict=True)):+.0%})")
    print(f"  merging their pending lists later: {min(merge_per_message):.3f}–"
          f"{max(merge_per_message):.3f} ms; in all {min(total):+.3f} to {max(total):+.3f} ms "
          "per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
