"""Connection counts per hour and port: one row per (hour, port, user), the per-port row
(no user yet) included."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from relay.models import ConnectionStat
from relay.nodes import _Counts, write_stats


def test_the_per_port_row_cannot_be_created_twice(db):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    ConnectionStat.objects.create(hour=hour, port=2525, smtp_user=None, connections=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConnectionStat.objects.create(hour=hour, port=2525, smtp_user=None, connections=1)


def test_counts_written_twice_add_up_in_the_per_port_row(db):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for _ in range(2):
        write_stats({(hour, 2525, None): _Counts(connections=3, logins=0)})
    row = ConnectionStat.objects.get(hour=hour, port=2525, smtp_user=None)
    assert row.connections == 6


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_merges_per_port_rows_created_twice():
    executor = MigrationExecutor(connection)
    before = [("relay", "0002_drop_fk_indexes_covered_by_composites")]
    after = [("relay", "0003_connstat_unique_without_user")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model("relay", "ConnectionStat")
        hour = timezone.now().replace(minute=0, second=0, microsecond=0)
        for connections, logins in ((2, 0), (5, 1)):
            old.objects.create(hour=hour, port=587, smtp_user=None, connections=connections,
                               logins=logins, last_seen=timezone.now())
        old.objects.create(hour=hour, port=25, smtp_user=None, connections=7, logins=0,
                           last_seen=timezone.now())
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes())
    rows = {r.port: (r.connections, r.logins) for r in ConnectionStat.objects.all()}
    assert rows == {587: (7, 1), 25: (7, 0)}
