"""The database side of the limit sync: what one relay process shares with the others.

About once a second (`relay.smtp.limit_sync`) each relay process runs ONE job on its
database threads, in one transaction, that
- adds its new failed logins per client IP to `LoginFailureCount` (10 s buckets) and
  sums, for the IPs it saw fail within RELAY_AUTH_FAILURE_WINDOW, every process's
  failures: at RELAY_AUTH_FAILURE_LIMIT it starts the IP's cool-off for all of them;
- writes the cool-offs it started itself to `ClientCooloff`, and reads the rows changed
  since its last sync (started, or lifted by the console's "unblock now") elsewhere;
- writes its open connections per IP (when they changed) on its `RelayNode` row and
  reads those of the other live processes;
- counts the last hour's messages of its recently active users with an hourly limit;
- writes the log-in times and IPs of its users (at most one a minute per user; not on
  the login's path);
- reads the suppression-list versions of the accounts it holds answers for
  (`relay.smtp.suppression_cache`).

Nothing here runs per message or per connection. Times are the processes' wall clocks:
keep the machines' clocks in sync (NTP); changes are read with `READ_OVERLAP` to spare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from relay.models import ClientCooloff, LoginFailureCount, RelayNode, SuppressionListVersion
from relay.smtp.limits import CooloffOwner, hourly_counts
from relay.smtp.login import LastLogin, write_last_logins

BUCKET_SECONDS = 10
# Rows changed this long before the last read are read again: a transaction that
# committed late, or a clock a little behind, is not missed.
READ_OVERLAP = timedelta(seconds=5)
# A process whose last sync is older than this is gone (killed, cut off): its
# connections no longer count. Keep RELAY_LIMITS_SYNC_SECONDS well below it.
STALE_SECONDS = 10.0


@dataclass(frozen=True)
class CooloffNote:
    """A cool-off as the processes exchange it."""

    client_ip: str
    started: datetime
    until: datetime
    owner: CooloffOwner = CooloffOwner()


@dataclass
class SyncOut:
    """What one process shares at a sync."""

    node_id: str
    failure_limit: int
    failure_window: float
    cooloff_seconds: float
    # New failed logins per IP since the last sync, and the owner of the latest one.
    failures: dict[str, int] = field(default_factory=dict)
    owners: dict[str, CooloffOwner] = field(default_factory=dict)
    # IPs with failures here within the window: their totals are summed.
    recent_ips: list[str] = field(default_factory=list)
    started: list[CooloffNote] = field(default_factory=list)
    # Open connections per IP, None: unchanged since the last sync.
    connections: dict[str, int] | None = None
    count_connections: bool = True
    hourly_users: list[int] = field(default_factory=list)
    # Log-in times and IPs to write on the users' rows.
    logins: list[LastLogin] = field(default_factory=list)
    # Accounts whose suppression-list versions to read.
    suppression_accounts: list[int] = field(default_factory=list)
    # Cool-off changes are read from here on (None: every active one, at start).
    changes_since: datetime | None = None


@dataclass
class SyncIn:
    """What the process reads back."""

    read_at: datetime
    # Cool-offs started or lifted elsewhere (or started by this sync's sum).
    cooloffs: list[CooloffNote] = field(default_factory=list)
    # Cool-offs this sync started from the failures summed over all processes.
    started: list[CooloffNote] = field(default_factory=list)
    remote_connections: dict[str, int] = field(default_factory=dict)
    hourly: dict[int, int] = field(default_factory=dict)
    # Suppression-list versions (an account without a row is left out: version 0).
    suppression_versions: dict[int, int] = field(default_factory=dict)


def bucket_of(at: datetime) -> datetime:
    return at.replace(second=at.second - at.second % BUCKET_SECONDS, microsecond=0)


def sync(out: SyncOut) -> SyncIn:
    """Share `out` and read what the others shared. Synchronous, one transaction."""
    now = timezone.now()
    result = SyncIn(read_at=now)
    with transaction.atomic():
        _add_failures(out.failures, bucket_of(now))
        write_last_logins(out.logins)
        for note in out.started:
            _write_cooloff(note)
        result.started = _sum_failures(out, now)
        if out.count_connections:
            result.remote_connections = _connections(out, now)
        result.hourly = hourly_counts(out.hourly_users)
        result.cooloffs = _changed_cooloffs(out.changes_since, now)
        result.suppression_versions = suppression_versions(out.suppression_accounts)
    return result


def _add_failures(failures: dict[str, int], bucket: datetime) -> None:
    for ip, count in failures.items():
        rows = LoginFailureCount.objects.filter(client_ip=ip, bucket=bucket)
        if rows.update(count=F("count") + count):
            continue
        try:
            with transaction.atomic():
                LoginFailureCount.objects.create(client_ip=ip, bucket=bucket, count=count)
        except IntegrityError:  # another process created it in between
            rows.update(count=F("count") + count)


def _write_cooloff(note: CooloffNote) -> bool:
    """Store a cool-off started by some process, unless the IP's row changed since it
    started (an admin lifted it, or another process started a later one). Its failures
    are spent: they do not count towards the next cool-off."""
    LoginFailureCount.objects.filter(client_ip=note.client_ip).delete()
    values = {"started": note.started, "until": note.until, "changed": note.started,
              "username": note.owner.username, "account_id": note.owner.account_id,
              "smtp_user_id": note.owner.smtp_user_id}
    if ClientCooloff.objects.filter(client_ip=note.client_ip, changed__lt=note.started).update(
            **values):
        return True
    try:
        with transaction.atomic():
            ClientCooloff.objects.create(client_ip=note.client_ip, **values)
    except IntegrityError:  # a newer row: leave it
        return False
    return True


def _sum_failures(out: SyncOut, now: datetime) -> list[CooloffNote]:
    """Cool-offs to start now: the IPs whose failures, on every process together,
    reached the limit within the window and are not cooled off already."""
    ips = sorted(set(out.recent_ips) | set(out.failures))
    if not out.failure_limit or not ips:
        return []
    since = bucket_of(now - timedelta(seconds=out.failure_window))
    totals = (LoginFailureCount.objects.filter(client_ip__in=ips, bucket__gte=since)
              .order_by().values_list("client_ip").annotate(n=Sum("count")))
    over = [ip for ip, n in totals if n >= out.failure_limit]
    active = set(ClientCooloff.objects.filter(client_ip__in=over, until__gt=now)
                 .values_list("client_ip", flat=True))
    started = []
    for ip in over:
        if ip in active:
            continue
        note = CooloffNote(ip, now, now + timedelta(seconds=out.cooloff_seconds),
                           out.owners.get(ip, CooloffOwner()))
        if _write_cooloff(note):
            started.append(note)
    return started


def _connections(out: SyncOut, now: datetime) -> dict[str, int]:
    """Write this process's open connections, read the other live processes' sum."""
    mine = RelayNode.objects.filter(node_id=out.node_id)
    if out.connections is not None:
        mine.update(connections=out.connections, synced=now)
    else:
        mine.update(synced=now)
    fresh = now - timedelta(seconds=STALE_SECONDS)
    totals: dict[str, int] = {}
    rows = (RelayNode.objects.filter(synced__gte=fresh, stopped__isnull=True)
            .exclude(node_id=out.node_id).exclude(connections={})
            .values_list("connections", flat=True))
    for connections in rows:
        for ip, count in (connections or {}).items():
            totals[ip] = totals.get(ip, 0) + int(count)
    return totals


def suppression_versions(account_ids: list[int]) -> dict[int, int]:
    versions: dict[int, int] = {}
    for start in range(0, len(account_ids), 500):
        versions.update(SuppressionListVersion.objects.filter(
            account_id__in=account_ids[start:start + 500]).values_list("account_id", "version"))
    return versions


def _changed_cooloffs(since: datetime | None, now: datetime) -> list[CooloffNote]:
    rows = ClientCooloff.objects.order_by()
    rows = (rows.filter(until__gt=now) if since is None
            else rows.filter(changed__gte=since - READ_OVERLAP))
    return [CooloffNote(r.client_ip, r.started, r.until,
                        CooloffOwner(r.username, r.account_id, r.smtp_user_id))
            for r in rows]


def release_client(client_ip: str) -> None:
    """Lift `client_ip`'s cool-off on every relay process (at their next sync) and
    forget its failed logins. Synchronous; call it in the transaction of the release."""
    now = timezone.now()
    LoginFailureCount.objects.filter(client_ip=client_ip).delete()
    values = {"until": now, "changed": now}
    rows = ClientCooloff.objects.filter(client_ip=client_ip)
    if rows.update(**values):
        return
    try:
        with transaction.atomic():
            # Not shared yet (its process syncs within a second): the release row wins
            # over a cool-off that started before it.
            ClientCooloff.objects.create(client_ip=client_ip, started=now, **values)
    except IntegrityError:  # shared in between
        rows.update(**values)


def forget_old(now: datetime, window: float) -> None:
    """Delete failure counts past the window and cool-offs over for a day."""
    LoginFailureCount.objects.filter(bucket__lt=now - timedelta(seconds=window + 60)).delete()
    ClientCooloff.objects.filter(until__lt=now - timedelta(days=1)).delete()
