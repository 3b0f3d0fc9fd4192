"""The contract of a troubleshooter check, and what several checks read.

Each check is a plain function of one SMTP+ user returning a `CheckResult`: a verdict
("ok", "problem" or "nodata"), the facts it is based on (from the last 24 hours), and the
fix, with a button or a link where the console can do it. Every query is bounded: counts
are aggregated in the database (`values().annotate()`), lists are sliced. What several
checks read (the user's senders, its rejected senders, the live relays and their ports)
is loaded once per page, in a `Facts` the checks share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import cached_property

from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.domains.ownership import verified_domains
from accounts.models import AuthorizedDomain, AuthorizedEmail, SendingDomain, SmtpUser
from accounts.senders import SenderPolicy, split_address
from relay.listen import Listener, advertised_listeners, alive_nodes
from relay.models import EventKind, RelayEvent, RelayNode

WINDOW = timedelta(hours=24)
OK, PROBLEM, NODATA = "ok", "problem", "nodata"
MAX_ROWS = 200  # addresses aggregated per check
MAX_SHOWN = 10  # domains/addresses offered a button


@dataclass(frozen=True)
class Action:
    """A fix the console can apply: a link, or a POST button when `post` is set."""

    label: str
    url: str
    post: dict[str, str] | None = None
    primary: bool = True


@dataclass
class Fix:
    text: str
    actions: list[Action] = field(default_factory=list)


@dataclass
class CheckResult:
    key: str
    status: str  # OK | PROBLEM | NODATA
    title: str
    evidence: list[str] = field(default_factory=list)
    fix: Fix | None = None


class Facts:
    """What several checks of one SMTP+ user read, each loaded on first use, then shared.

    A check run on its own builds its own; the page builds one for all of them.
    """

    def __init__(self, user: SmtpUser, now: datetime) -> None:
        self.user = user
        self.now = now

    @cached_property
    def nodes(self) -> list[RelayNode]:
        """The live relay processes, latest heartbeat first."""
        return list(alive_nodes().order_by("-heartbeat"))

    @cached_property
    def listeners(self) -> tuple[list[Listener], bool]:
        """`advertised_listeners()` of the live relays."""
        return advertised_listeners(self.nodes)

    @cached_property
    def domains(self) -> list[tuple[str, bool]]:
        """The user's authorized domains (A-label, include_subdomains), by name."""
        return list(AuthorizedDomain.objects.filter(smtp_user=self.user)
                    .values_list("domain", "include_subdomains"))

    @cached_property
    def email_rows(self) -> list[tuple[str, bool]]:
        """The user's authorized addresses and whether each is confirmed, by address."""
        return [(email, confirmed is not None) for email, confirmed in
                AuthorizedEmail.objects.filter(smtp_user=self.user)
                .values_list("email", "confirmed_at")]

    @cached_property
    def emails(self) -> list[str]:
        """The user's authorized addresses, by address."""
        return [email for email, _ in self.email_rows]

    @cached_property
    def owned(self) -> list[tuple[str, bool]]:
        """The account's verified sending domains (A-label, include_subdomains)."""
        return verified_domains(self.user.account_id)

    @cached_property
    def policy(self) -> SenderPolicy:
        """The user's sender policy, as the relay has it at login."""
        return SenderPolicy.from_entries(self.user.username, self.domains, self.email_rows,
                                         owned=self.owned)

    @cached_property
    def sending_domains(self) -> dict[str, int]:
        """The account's sending domains, whatever their status: A-label -> id."""
        return dict(SendingDomain.objects.filter(account_id=self.user.account_id)
                    .values_list("domain", "pk"))

    @cached_property
    def rejections(self) -> tuple[list[Rejection], int]:
        """`sender_rejections()` of the user."""
        return sender_rejections(self.user, self.now, self.policy)


def when(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S %Z")


def user_page(user: SmtpUser) -> str:
    return reverse("accounts:smtpuser_detail", args=[user.pk])


def times(n: int) -> str:
    return f"{n} time{'s' if n != 1 else ''}"


@dataclass
class Rejection:
    address: str  # "local@a-label"
    domain: str  # A-label
    count: int
    last: datetime
    kinds: dict[str, int]


def sender_rejections(
    user: SmtpUser, now: datetime, policy: SenderPolicy | None = None
) -> tuple[list[Rejection], int]:
    """Rejected senders of the last 24 h that are still not authorized; and how many
    rejections are now authorized (fixed since). `policy`: the user's, if already loaded."""
    rows = (
        RelayEvent.objects.filter(
            smtp_user=user, kind__in=(EventKind.SENDER_REJECTED, EventKind.FROM_REJECTED),
            last_seen__gte=now - WINDOW,
        ).exclude(address="")
        .values("address", "kind").annotate(n=Sum("count"), last=Max("last_seen"))
        .order_by("-n")[:MAX_ROWS]
    )
    policy = policy or SenderPolicy.load(user)
    found: dict[str, Rejection] = {}
    fixed = 0
    for row in rows:
        parts = split_address(parseaddr(row["address"])[1] or row["address"])
        if parts is None:
            continue
        address = f"{parts[0]}@{parts[1]}"
        if policy.check(address).allowed:
            fixed += row["n"]
            continue
        rej = found.get(address.lower())
        if rej is None:
            rej = found[address.lower()] = Rejection(address, parts[1], 0, row["last"], {})
        rej.count += row["n"]
        rej.last = max(rej.last, row["last"])
        rej.kinds[row["kind"]] = rej.kinds.get(row["kind"], 0) + row["n"]
    return sorted(found.values(), key=lambda r: (-r.count, r.address)), fixed


Check = Callable[[SmtpUser, datetime, Facts | None], CheckResult]
