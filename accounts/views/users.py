"""SMTP+ users console: list, create, detail, edit, enable/disable, delete.

The detail page also shows what a POST left for it (a new or revealed password, the
outcome of an "add senders" submission: smtpplus/once.py) and a "can send as" answer, so
`render_detail` builds its whole context in one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers

from accounts.actions import smtp_users
from accounts.actions.senders import AddResult
from accounts.audit import Actor
from accounts.domains.ownership import verified_domains
from accounts.forms import SendAsForm, SendersForm, SmtpUserEditForm, SmtpUserForm
from accounts.models import AuthorizedDomain, AuthorizedEmail, Role, SmtpUser
from accounts.senders import covered, subdomains_covered, verification_required
from accounts.tenancy import AccountRequest, member_required
from relay.listen import Listener, advertised_listeners, compact_ports
from smtpplus import once

PAGE_SIZE = 50

TLS_LABELS = {
    "starttls": "STARTTLS",
    "implicit": "SSL/TLS (implicit TLS)",
    "none": "none",
}
# The same modes where a sentence names one port: "port 2525 (no encryption)".
TLS_NAMES = {**TLS_LABELS, "none": "no encryption"}


@dataclass(frozen=True)
class PortGroup:
    tls: str
    label: str
    ports: str


def connection_settings() -> dict[str, Any]:
    """What a mail client needs, from the live relays or, until one reports, settings."""
    listeners, reported = advertised_listeners()
    groups = []
    for tls in ("starttls", "implicit", "none"):
        ports = [item.port for item in listeners if item.tls == tls]
        if ports:
            groups.append(PortGroup(tls, TLS_LABELS[tls], compact_ports(ports)))
    return {
        "host": settings.RELAY_HOSTNAME,
        "host_is_local": is_local_host(settings.RELAY_HOSTNAME),
        "port_groups": groups,
        "n_ports": len({item.port for item in listeners}),
        "reported": reported,
        "recommended": _describe(_recommended(listeners)),
        "require_tls": settings.RELAY_REQUIRE_TLS,
    }


def is_local_host(host: str) -> bool:
    """A name only this machine can use to reach the relay."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _describe(item: Listener | None) -> dict[str, Any] | None:
    return {"port": item.port, "label": TLS_NAMES[item.tls]} if item else None


def _recommended(listeners: list[Listener]) -> Listener | None:
    """The port to suggest first: submission with STARTTLS, then SMTPS, then 2525."""
    for port, tls in ((587, "starttls"), (465, "implicit"), (2525, "starttls"), (2525, "none")):
        for item in listeners:
            if item.port == port and item.tls == tls:
                return item
    return listeners[0] if listeners else None


def scoped_user(request: AccountRequest, pk: int) -> SmtpUser:
    """The SMTP+ user `pk` of the current account; any other account's is a 404."""
    # Through the account's related manager: `smtp_user.account` is `request.account`,
    # not another query in every audit call.
    return get_object_or_404(request.account.smtp_users, pk=pk)


def post_required(request: HttpRequest) -> HttpResponse | None:
    """A 405 for anything but POST. Called after the object lookup, so that another
    account's object is a 404 whatever the method."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


def unowned_marked(smtp_user: SmtpUser) -> list[AuthorizedDomain]:
    """The user's domains, each with `.unowned`: authorized, but not a verified sending
    domain of the account (never verified, lapsed, removed): the relay refuses it."""
    domains = list(smtp_user.authorized_domains.all())
    owned = verified_domains(smtp_user.account_id) if verification_required() else None
    for entry in domains:
        unowned = owned is not None and not covered(entry.domain, owned)
        entry.unowned = unowned  # type: ignore[attr-defined]
        # "Include subdomains" is on, but the sending domain does not include them: the
        # relay refuses every subdomain (as `SenderPolicy` decides).
        entry.subdomains_refused = (  # type: ignore[attr-defined]
            owned is not None and entry.include_subdomains and not unowned
            and not subdomains_covered(entry.domain, owned))
    return domains


def pending_marked(smtp_user: SmtpUser) -> list[AuthorizedEmail]:
    """The user's addresses, each with `.pending`: authorized, but not usable until the
    link mailed to it has been followed (not confirmed, at a domain the account does not
    own)."""
    emails = list(smtp_user.authorized_emails.all())
    owned = verified_domains(smtp_user.account_id) if verification_required() else None
    for entry in emails:
        entry.pending = (  # type: ignore[attr-defined]
            owned is not None and entry.confirmed_at is None
            and not covered(entry.email.rpartition("@")[2], owned))
    return emails


def render_detail(
    request: HttpRequest,
    smtp_user: SmtpUser,
    *,
    status: int = 200,
    password: str | None = None,
    password_note: str = "",
    senders_form: SendersForm | None = None,
    add_result: Any = None,
    send_as_form: SendAsForm | None = None,
    decision: Any = None,
) -> HttpResponse:
    """The user's page. A response that carries a password is never cached."""
    context = {
        "smtp_user": smtp_user,
        "conn": connection_settings(),
        "password": password,
        "password_note": password_note,
        "domains": unowned_marked(smtp_user),
        "emails": pending_marked(smtp_user),
        "senders_form": senders_form or SendersForm(),
        "add_result": add_result,
        "send_as_form": send_as_form or SendAsForm(),
        "decision": decision,
        "reauth_minutes": max(1, settings.SMTPPLUS_REAUTH_SECONDS // 60),
    }
    response = render(request, "accounts/smtpuser_detail.html", context, status=status)
    if password is not None:
        add_never_cache_headers(response)
    return response


def count_per_user(model: type[AuthorizedDomain | AuthorizedEmail]) -> Coalesce:
    """The user's number of `model` rows, as a subquery: two COUNT joins on one query
    would multiply each user's domains by its addresses before counting."""
    counts = (
        model.objects.filter(smtp_user=OuterRef("pk"))
        .order_by()
        .values("smtp_user")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


def user_list_queryset(request: AccountRequest, query: str = "") -> QuerySet[SmtpUser]:
    users = request.account.smtp_users.annotate(
        n_domains=count_per_user(AuthorizedDomain),
        n_emails=count_per_user(AuthorizedEmail),
    )
    if query:
        users = users.filter(Q(name__icontains=query) | Q(username__icontains=query))
    return users.order_by("name", "username")


@member_required()
def smtpuser_list(request: AccountRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(user_list_queryset(request, query), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/smtpuser_list.html", {"page": page, "q": query})


@member_required(Role.ADMIN)
def smtpuser_create(request: AccountRequest) -> HttpResponse:
    form = SmtpUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        smtp_user, password = smtp_users.create_smtp_user(
            request.account,
            name=form.cleaned_data["name"],
            note=form.cleaned_data["note"],
            priority=form.cleaned_data["priority"],
            hourly_limit=form.cleaned_data["hourly_limit"],
            actor=Actor.from_request(request),
        )
        del password  # the detail page reads it from its encrypted column
        show_password_next(
            request, smtp_user,
            "The user was created. Copy its password now: from the next page on it is "
            "hidden, and only an owner or admin can reveal it again.",
        )
        return redirect(smtp_user)
    return render(request, "accounts/smtpuser_form.html", {"form": form, "smtp_user": None})


def show_password_next(request: HttpRequest, smtp_user: SmtpUser, note: str) -> None:
    """Show the user's password on its next page (after the redirect), once."""
    once.keep_for_next_page(request, "password", smtp_user.pk, {"note": note})


def show_senders_result_next(
    request: HttpRequest, smtp_user: SmtpUser, result: AddResult, retry: dict[str, Any]
) -> None:
    """Show what an "add senders" submission did on the user's next page, once."""
    once.keep_for_next_page(request, "senders", smtp_user.pk,
                            {"result": asdict(result), "retry": retry})


def _kept_senders_result(data: dict[str, Any] | None) -> tuple[AddResult | None, SendersForm | None]:
    if data is None:
        return None, None
    kept = data["result"]

    def pairs(name: str) -> list[tuple[str, str]]:  # JSON made the tuples lists
        return [(str(a), str(b)) for a, b in kept[name]]

    result = AddResult(
        added_domains=kept["added_domains"], added_emails=kept["added_emails"],
        unchanged=kept["unchanged"], domain_errors=pairs("domain_errors"),
        email_errors=pairs("email_errors"), warnings=pairs("warnings"),
        emails_in_domain_box=kept["emails_in_domain_box"],
    )
    return result, SendersForm(initial=data["retry"])


@member_required()
def smtpuser_detail(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    password, note = None, ""
    shown = once.take(request, "password", smtp_user.pk)
    if shown is not None and request.membership.can_reveal:
        password, note = smtp_user.get_password(), str(shown.get("note", ""))
    add_result, senders_form = _kept_senders_result(once.take(request, "senders", smtp_user.pk))
    return render_detail(request, smtp_user, password=password, password_note=note,
                         add_result=add_result, senders_form=senders_form)


@member_required(Role.ADMIN)
def smtpuser_edit(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    initial = {
        "name": smtp_user.name,
        "note": smtp_user.note,
        "priority": smtp_user.priority,
        "hourly_limit": smtp_user.hourly_limit,
        "active": smtp_user.active,
    }
    form = SmtpUserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = smtp_users.update_smtp_user(
            smtp_user, form.cleaned_data, actor=Actor.from_request(request)
        )
        messages.success(request, "Saved." if changed else "Nothing changed.")
        return redirect(smtp_user)
    return render(request, "accounts/smtpuser_form.html", {"form": form, "smtp_user": smtp_user})


@member_required(Role.ADMIN)
def smtpuser_set_active(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    if not_allowed := post_required(request):
        return not_allowed
    active = request.POST.get("active") == "1"
    if smtp_user.active != active:
        smtp_users.set_active(smtp_user, active, actor=Actor.from_request(request))
        messages.success(
            request,
            f"{smtp_user} is enabled." if active
            else f"{smtp_user} is disabled: the relay now refuses its logins.",
        )
    return redirect(smtp_user)


@member_required(Role.ADMIN)
def smtpuser_delete(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    if request.method == "POST":
        label = str(smtp_user)
        smtp_users.delete_smtp_user(smtp_user, actor=Actor.from_request(request))
        messages.success(request, f"SMTP+ user {label} was deleted.")
        return redirect("accounts:smtpuser_list")
    return render(
        request, "accounts/smtpuser_confirm_delete.html",
        {
            "smtp_user": smtp_user,
            "n_senders": smtp_user.authorized_domains.count()
            + smtp_user.authorized_emails.count(),
        },
    )
