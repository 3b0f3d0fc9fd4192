"""The troubleshooter: the seed's "why was my message not sent" table as live checks.

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

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.actions.senders import add_senders, display_email, set_include_subdomains
from accounts.models import AuthorizedDomain, AuthorizedEmail, SmtpUser
from accounts.senders import (
    InvalidEntry,
    SenderPolicy,
    domain_to_unicode,
    normalize_domain,
    normalize_email,
    split_address,
    split_entries,
)
from relay.listen import Listener, advertised_listeners, alive_nodes
from relay.models import ConnectionStat, EventKind, Message, Recipient, RelayEvent, RelayNode

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
    def emails(self) -> list[str]:
        """The user's authorized addresses, by address."""
        return list(AuthorizedEmail.objects.filter(smtp_user=self.user)
                    .values_list("email", flat=True))

    @cached_property
    def rejections(self) -> tuple[list[Rejection], int]:
        """`sender_rejections()` of the user."""
        policy = SenderPolicy.from_entries(self.user.username, self.domains, self.emails)
        return sender_rejections(self.user, self.now, policy)


def when(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M:%S %Z")


def _user_page(user: SmtpUser) -> str:
    return reverse("accounts:smtpuser_detail", args=[user.pk])


def _times(n: int) -> str:
    return f"{n} time{'s' if n != 1 else ''}"


# --- 1. credentials --------------------------------------------------------------------
LOGIN_KINDS = (EventKind.AUTH_FAILED, EventKind.TLS_REQUIRED, EventKind.AUTH_COOLOFF)
REASON_LABELS = {
    EventKind.TLS_REQUIRED: "TLS required (AUTH before STARTTLS)",
    EventKind.AUTH_COOLOFF: "refused during the cool-off after too many failures",
}
REASON_FIXES = {
    "wrong password": "Reveal the password on the user's page and re-enter it in the client.",
    "unknown user": "The client uses a username that does not exist: re-enter the username "
                    "shown on the user's page.",
    "user disabled": "The user is disabled: enable it on the user's page.",
    EventKind.TLS_REQUIRED: "Turn on STARTTLS (or SSL/TLS on an implicit-TLS port) in the "
                            "client: the relay only accepts a login over an encrypted connection.",
    EventKind.AUTH_COOLOFF: "The client's address was cooled off after repeated failures; "
                            "fix the credentials, then wait for the cool-off to end.",
}


def _known_ips(user: SmtpUser, since: datetime) -> list[str]:
    """Addresses this user's clients used lately. An AUTH refused before TLS (or during a
    cool-off) is answered before the username is read, so its event can only be tied to
    a user by the client's address."""
    recent = (RelayEvent.objects.filter(smtp_user=user, last_seen__gte=since)
              .exclude(client_ip=None).order_by().values_list("client_ip", flat=True)
              .distinct()[:20])
    ips = {ip for ip in recent if ip is not None}
    if user.last_login_ip:
        ips.add(user.last_login_ip)
    return sorted(ips)


def last_login(user: SmtpUser) -> datetime | None:
    """The last successful login: the user's row is written at most once a minute per
    relay, the hourly connection counts at every heartbeat; the later of the two."""
    stat = (ConnectionStat.objects.filter(smtp_user=user, logins__gt=0)
            .aggregate(last=Max("last_seen"))["last"])
    return max((t for t in (user.last_login_at, stat) if t), default=None)


def check_credentials(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    since = now - WINDOW
    failures = RelayEvent.objects.filter(
        Q(smtp_user=user) | Q(username__iexact=user.username)
        | Q(username="", client_ip__in=_known_ips(user, since)),
        kind__in=LOGIN_KINDS, last_seen__gte=since,
    )
    by_reason = list(failures.values("kind", "reason").annotate(
        n=Sum("count"), last=Max("last_seen")).order_by("-n")[:10])
    by_ip = list(failures.values("client_ip").annotate(
        n=Sum("count"), last=Max("last_seen")).order_by("-n")[:5])
    evidence: list[str] = []
    total = sum(r["n"] for r in by_reason)
    last_failure = max((r["last"] for r in by_reason), default=None)
    if total:
        evidence.append(f"{total} failed login{'s' if total != 1 else ''} in the last 24 h, "
                        f"the last at {when(last_failure)}")
        for r in by_reason:
            label = REASON_LABELS.get(r["kind"]) or r["reason"] or r["kind"]
            evidence.append(f"Reason: {label} — {_times(r['n'])}, last at {when(r['last'])}")
        for r in by_ip:
            evidence.append(f"From {r['client_ip'] or 'unknown address'}: {_times(r['n'])}")
    last_ok = last_login(user)
    evidence.append(f"Last successful login: {when(last_ok)}"
                    + (f" from {user.last_login_ip}" if user.last_login_ip else ""))
    reveal = Action("Reveal the credentials on the user's page", _user_page(user))
    if not user.active:
        evidence.insert(0, "The user is disabled: every login is refused.")
        return CheckResult("credentials", PROBLEM, "Credentials: the user is disabled", evidence,
                           Fix("Enable the user on its page.", [Action("Open the user's page",
                                                                       _user_page(user))]))
    if total and (last_ok is None or (last_failure is not None and last_ok < last_failure)):
        fixes = []
        for r in by_reason:
            text = REASON_FIXES.get(r["reason"]) or REASON_FIXES.get(r["kind"])
            if text and text not in fixes:
                fixes.append(text)
        fixes.append(f"The username is {user.username}; the password is on the user's page.")
        return CheckResult("credentials", PROBLEM, "Credentials: logins are failing", evidence,
                           Fix(" ".join(fixes), [reveal, Action(
                               "See the failed logins", reverse("relay:events")
                               + f"?user={user.pk}&kind={EventKind.AUTH_FAILED}", primary=False)]))
    if total:
        evidence.append("A login succeeded after the last failure.")
    if last_ok is None and not total:
        return CheckResult("credentials", NODATA, "Credentials: no login attempt seen", evidence,
                           Fix("Nothing has logged in as this user yet. Configure the client "
                               "with the username and password from the user's page.", [reveal]))
    return CheckResult("credentials", OK, "Credentials are accepted", evidence)


# --- 2./3. sender domain / address not authorized ----------------------------------------
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


def _authorize(user: SmtpUser, label: str, kind: str, value: str, *, subdomains: bool = False,
               primary: bool = True) -> Action:
    post = {"kind": kind, "value": value}
    if subdomains:
        post["include_subdomains"] = "1"
    return Action(label, reverse("relay:troubleshoot_authorize", args=[user.pk]), post, primary)


def _kinds_text(kinds: dict[str, int]) -> str:
    names = {EventKind.SENDER_REJECTED: "envelope sender", EventKind.FROM_REJECTED: "From header"}
    return ", ".join(f"{name} ×{kinds[kind]}" for kind, name in names.items() if kind in kinds)


def _fixed_note(fixed: int) -> list[str]:
    if not fixed:
        return []
    return [f"{fixed} rejection{'s' if fixed != 1 else ''} of the last 24 h "
            "now pass: those senders have been authorized since. Resend those messages."]


def _nothing_rejected(key: str, what: str, fixed: int) -> CheckResult:
    return CheckResult(key, OK, f"No sender {what} was rejected", _fixed_note(fixed) or [
        "No message was rejected for its sender in the last 24 h."])


def check_sender_domains(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    rejections, fixed = (facts or Facts(user, now)).rejections
    if not rejections:
        return _nothing_rejected("sender_domain", "domain", fixed)
    domains: dict[str, list[Rejection]] = {}
    for r in rejections:
        domains.setdefault(r.domain, []).append(r)
    ordered = sorted(domains.items(), key=lambda kv: -sum(r.count for r in kv[1]))
    evidence: list[str] = []
    actions: list[Action] = []
    for domain, rejs in ordered:
        shown = domain_to_unicode(domain)
        addresses = ", ".join(display_email(r.address) for r in rejs[:3])
        more = f" and {len(rejs) - 3} more" if len(rejs) > 3 else ""
        total = sum(r.count for r in rejs)
        evidence.append(f"{shown}: {total} rejected, last at "
                        f"{when(max(r.last for r in rejs))} ({addresses}{more})")
        if len(actions) >= MAX_SHOWN * 2:
            continue
        labels = domain.split(".")
        if labels[0] == "www" and len(labels) >= 3:
            # The seed: mail comes from mycompany.com, rarely www.mycompany.com. Authorizing
            # the parent with its subdomains covers both.
            parent = ".".join(labels[1:])
            actions.append(_authorize(user, f"Authorize {domain_to_unicode(parent)} and its "
                                            "subdomains", "domain", parent, subdomains=True))
            actions.append(_authorize(user, f"Authorize only {shown}", "domain", domain,
                                      primary=False))
        else:
            actions.append(_authorize(user, f"Authorize {shown}", "domain", domain))
    return CheckResult(
        "sender_domain", PROBLEM, "Sender domain not authorized", evidence + _fixed_note(fixed),
        Fix("Authorize the domain the client sends from (usually mycompany.com, not "
            "www.mycompany.com) — or, if you prefer, only the addresses (below). Then "
            "resend: rejected messages were not stored.", actions))


def check_sender_emails(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    rejections, fixed = (facts or Facts(user, now)).rejections
    if not rejections:
        return _nothing_rejected("sender_email", "address", fixed)
    evidence = [
        f"{display_email(r.address)}: {r.count} rejected ({_kinds_text(r.kinds)}), "
        f"last at {when(r.last)}" for r in rejections[:MAX_SHOWN * 2]
    ]
    if len(rejections) > MAX_SHOWN * 2:
        evidence.append(f"… and {len(rejections) - MAX_SHOWN * 2} more addresses")
    actions = [_authorize(user, f"Authorize {display_email(r.address)}", "email", r.address)
               for r in rejections[:MAX_SHOWN]]
    return CheckResult(
        "sender_email", PROBLEM, "Sender email not authorized", evidence + _fixed_note(fixed),
        Fix("Authorize just these addresses — or the whole domain (above), whichever works "
            "best for you. Then resend: rejected messages were not stored.", actions))


# --- 6. other reasons ------------------------------------------------------------------
def check_has_senders(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    facts = facts or Facts(user, now)
    domains, emails = [domain for domain, _ in facts.domains], facts.emails
    if not domains and not emails:
        return CheckResult("has_senders", PROBLEM, "No authorized senders at all", [
            "This user has no authorized domain and no authorized address: every message "
            "is rejected."], Fix("Authorize the domain (or the addresses) the client sends "
                                 "from on the user's page.",
                                 [Action("Open the user's page", _user_page(user))]))
    shown = [domain_to_unicode(d) for d in domains[:5]] + [display_email(e) for e in emails[:5]]
    more = " …" if len(domains) > 5 or len(emails) > 5 else ""
    return CheckResult("has_senders", OK, "The user has authorized senders",
                       [f"Authorized: {', '.join(shown)}{more}"])


def check_hourly_limit(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    hits = RelayEvent.objects.filter(smtp_user=user, kind=EventKind.RATE_LIMITED,
                                     last_seen__gte=now - WINDOW).aggregate(
        n=Sum("count"), last=Max("last_seen"))
    last_hour = Message.objects.filter(smtp_user=user, created__gte=now - timedelta(hours=1)).count()
    limit = user.hourly_limit
    evidence = [f"Hourly limit: {limit if limit else 'none'}; messages accepted in the last "
                f"hour: {last_hour}"]
    if hits["n"]:
        evidence.append(f"Refused for the hourly limit: {_times(hits['n'])} in the last 24 h, "
                        f"the last at {when(hits['last'])}")
    # Raising the limit (which changes the user) resolves earlier hits.
    current = bool(limit) and (last_hour >= (limit or 0) or (
        bool(hits["n"]) and hits["last"] > user.changed))
    if current:
        return CheckResult("hourly_limit", PROBLEM, "Over the hourly limit", evidence, Fix(
            "The client was told 451 4.7.1 (try again later) and should retry. Raise or remove "
            "the limit on the user's page, or spread the sending over time.",
            [Action("Edit the user", reverse("accounts:smtpuser_edit", args=[user.pk]))]))
    return CheckResult("hourly_limit", OK, "Within the hourly limit", evidence)


def check_size(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    limit_mb = settings.RELAY_MAX_MESSAGE_SIZE / (1024 * 1024)
    rows = list(RelayEvent.objects.filter(smtp_user=user, kind=EventKind.SIZE_EXCEEDED,
                                          last_seen__gte=now - WINDOW)
                .values("reason").annotate(n=Sum("count"), last=Max("last_seen"))
                .order_by("-last")[:5])
    evidence = [f"Size limit: {limit_mb:g} MB per message (attachments grow by about a third "
                "when encoded)."]
    if not rows:
        evidence.append("No message was refused for its size in the last 24 h.")
        return CheckResult("size", OK, "No message too large", evidence)
    for r in rows:
        evidence.append(f"Refused for size: {_times(r['n'])}, last at {when(r['last'])}"
                        + (f" — {r['reason']}" if r["reason"] else ""))
    return CheckResult("size", PROBLEM, "Messages rejected for size", evidence, Fix(
        "Send smaller messages: link to large files instead of attaching them. The operator "
        "can raise RELAY_MAX_MESSAGE_SIZE."))


def check_upstream(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    since = now - WINDOW
    counts = {r["status"]: r["n"] for r in Recipient.objects.filter(
        smtp_user=user, created__gte=since).values("status").annotate(n=Count("id")).order_by()}
    failed = Recipient.objects.filter(smtp_user=user, status="failed", finished_at__gte=since)
    top = list(failed.values("last_code", "last_enhanced", "last_text", "fail_reason")
               .annotate(n=Count("id")).order_by("-n")[:5])
    n_failed = failed.count() if top else 0
    log = reverse("relay:messages") + f"?user={user.pk}&status=failed"
    evidence = ["Recipients of the last 24 h: " + (", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())) or "none")]
    for r in top:
        reply = " ".join(str(x) for x in (r["last_code"], r["last_enhanced"]) if x)
        text = (r["last_text"] or r["fail_reason"] or "no reply")[:300]
        evidence.append(f"{_times(r['n'])}: {reply} {text}".strip())
    if n_failed:
        evidence.insert(1, f"{n_failed} recipient{'s' if n_failed != 1 else ''} failed in the "
                        "last 24 h; the most frequent replies:")
        return CheckResult("upstream", PROBLEM, "Deliveries failing upstream", evidence, Fix(
            "The upstream server refused these recipients; its reply says why (an unknown "
            "recipient: fix the address; a 5.7.x policy reply: check the sender domain's SPF "
            "and DKIM for this relay).", [Action("See the failed messages", log)]))
    if not counts:
        return CheckResult("upstream", NODATA, "No message accepted in the last 24 h", evidence)
    return CheckResult("upstream", OK, "No delivery failed upstream", evidence)


Check = Callable[[SmtpUser, datetime, Facts | None], CheckResult]


def all_checks() -> list[Check]:
    """The checks in the order the page shows them: the relay itself first."""
    from relay.troubleshooter.lockout import check_lockout
    from relay.troubleshooter.relay_checks import (
        check_port_open,
        check_port_supported,
        check_relay_running,
    )

    return [
        check_relay_running,
        check_credentials,
        check_lockout,
        check_sender_domains,
        check_sender_emails,
        check_port_open,
        check_port_supported,
        check_has_senders,
        check_hourly_limit,
        check_size,
        check_upstream,
    ]


def run_checks(
    user: SmtpUser, now: datetime | None = None, facts: Facts | None = None
) -> list[CheckResult]:
    """Every check, sharing what they read: `facts` if the page has loaded some already."""
    facts = facts or Facts(user, now or timezone.now())
    return [check(user, facts.now, facts) for check in all_checks()]


# --- one-click fixes -------------------------------------------------------------------
def authorize_sender(
    user: SmtpUser,
    kind: str,
    value: str,
    *,
    include_subdomains: bool = False,
    request: HttpRequest | None = None,
) -> str:
    """Authorize one domain or address for `user` (audited); returns what to tell the admin.

    Raises `InvalidEntry` for anything but exactly one valid domain/address. Authorizing
    a domain that is already there "with its subdomains" turns that option on.
    """
    if kind not in ("domain", "email"):
        raise InvalidEntry("unknown kind of sender")
    if len(split_entries(value)) != 1:
        raise InvalidEntry("exactly one domain or address is expected")
    if kind == "domain":
        domain = normalize_domain(value)
        result = add_senders(user, domains_text=domain, include_subdomains=include_subdomains,
                             request=request)
        entry = AuthorizedDomain.objects.get(smtp_user=user, domain=domain)
        if include_subdomains and set_include_subdomains(entry, True, request=request):
            return f"{entry.display} and its subdomains are now authorized."
        if not result.added_domains:
            return f"{entry.display} was already authorized."
        return f"{entry.display}{' and its subdomains' if include_subdomains else ''} " \
               "is now authorized."
    email = normalize_email(value)
    result = add_senders(user, emails_text=email, request=request)
    if not result.added_emails:
        return f"{display_email(email)} was already authorized."
    return f"{display_email(email)} is now authorized."
