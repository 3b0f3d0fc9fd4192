"""/api/v1/ endpoints of the accounts app: SMTP+ users, their authorized senders, and
the audit log. Every change goes through `accounts.actions` (the console's and the CLI's
functions), so validation, limits and audit rows are the same whichever way it comes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from accounts.actions import senders, smtp_users
from accounts.api.auth import (
    AUTH_ERRORS,
    ApiError,
    account_of,
    form_errors,
    not_found,
    writer,
)
from accounts.api.domains import router as domains_router
from accounts.forms import AuditFilterForm
from accounts.models import AuthorizedDomain, AuthorizedEmail, SmtpUser
from accounts.senders import can_send_as
from accounts.views.audit import filter_events
from smtpplus.addresses import display_email

router = Router(tags=["SMTP+ users"])
audit_router = Router(tags=["Audit log"])
__all__ = ["audit_router", "domains_router", "router"]
AUDIT_PAGE_SIZE = 100


class DomainOut(Schema):
    id: int
    domain: str = Field(description="As people read it (U-label).")
    include_subdomains: bool


class EmailOut(Schema):
    id: int
    email: str


class SmtpUserOut(Schema):
    id: int
    username: str
    name: str
    note: str
    active: bool
    priority: int
    hourly_limit: int | None
    last_login_at: datetime | None
    last_login_ip: str | None
    created: datetime


class SmtpUserDetailOut(SmtpUserOut):
    domains: list[DomainOut]
    emails: list[EmailOut]


class SmtpUserIn(Schema):
    name: str = Field("", max_length=200)
    note: str = ""
    priority: int = Field(3, ge=1, le=5, description="Queue order: 1 is delivered first.")
    hourly_limit: int | None = Field(None, ge=1, le=10_000_000)
    domains: list[str] = Field(default_factory=list, description="Sender domains to authorize.")
    emails: list[str] = Field(default_factory=list, description="Sender addresses to authorize.")
    include_subdomains: bool = False


class SmtpUserPatch(Schema):
    name: str | None = Field(None, max_length=200)
    note: str | None = None
    priority: int | None = Field(None, ge=1, le=5)
    hourly_limit: int | None = Field(None, ge=1, le=10_000_000)
    active: bool | None = None


class CredentialsOut(Schema):
    id: int
    username: str
    password: str


class SmtpUserCreatedOut(SmtpUserDetailOut):
    password: str


class SenderQuery(Schema):
    address: str = Field(max_length=998, description="A sender address, e.g. news@example.com.")


class CanSendAsOut(Schema):
    address: str
    allowed: bool
    reason: str = Field(description="The rule that allows it, or why not.")


class SendersIn(Schema):
    domains: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    include_subdomains: bool = False


class SendersOut(Schema):
    domains: list[DomainOut]
    emails: list[EmailOut]


class SendersAddedOut(SendersOut):
    added: list[str]
    unchanged: list[str]
    warnings: list[str]


def _user(request: HttpRequest, pk: int) -> SmtpUser:
    user = SmtpUser.objects.filter(pk=pk, account=account_of(request)).first()
    if user is None:
        raise not_found("SMTP+ user")
    return user


def _senders(user: SmtpUser) -> dict[str, Any]:
    return {
        "domains": [{"id": d.pk, "domain": d.display, "include_subdomains": d.include_subdomains}
                    for d in user.authorized_domains.all()],
        "emails": [{"id": e.pk, "email": e.display} for e in user.authorized_emails.all()],
    }


def _detail(user: SmtpUser) -> dict[str, Any]:
    fields = SmtpUserOut.model_fields
    return {**{name: getattr(user, name) for name in fields}, **_senders(user)}


def _add_senders(user: SmtpUser, body: SendersIn | SmtpUserIn, actor: Any) -> senders.AddResult:
    """Add senders all or nothing, like the CLI: any invalid entry refuses the call."""
    domains_text, emails_text = "\n".join(body.domains), "\n".join(body.emails)
    existing = frozenset(user.authorized_domains.values_list("domain", flat=True))
    parsed_domains, parsed_emails = senders.validate_senders(
        domains_text, emails_text, account_id=user.account_id,
        include_subdomains=body.include_subdomains, existing=existing)
    problems = [f"{e}: {r}" for e, r in parsed_domains.errors + parsed_emails.errors]
    problems += [f"{display_email(e)} is an email address: give it in emails"
                 for e in parsed_domains.emails_in_domain_box]
    if problems:
        raise ApiError(422, "invalid_senders", "; ".join(problems) + " (nothing was changed)")
    try:
        return senders.add_senders(user, domains_text=domains_text, emails_text=emails_text,
                                   include_subdomains=body.include_subdomains, actor=actor)
    except senders.TooManySenders as exc:
        raise ApiError(422, "too_many_senders", str(exc)) from exc


@router.get("/smtp-users", response={200: list[SmtpUserOut], **AUTH_ERRORS})
def list_smtp_users(request: HttpRequest) -> Any:
    return SmtpUser.objects.filter(account=account_of(request))


@router.post("/smtp-users", response={201: SmtpUserCreatedOut, **AUTH_ERRORS})
def create_smtp_user(request: HttpRequest, body: SmtpUserIn) -> Any:
    """Create an SMTP+ user; the answer is the only one that includes its password unasked."""
    actor = writer(request)
    with transaction.atomic():
        user, password = smtp_users.create_smtp_user(
            account_of(request), name=body.name, note=body.note, priority=body.priority,
            hourly_limit=body.hourly_limit, actor=actor,
        )
        if body.domains or body.emails:
            _add_senders(user, body, actor)
    return Status(201, {**_detail(user), "password": password})


@router.get("/smtp-users/{pk}", response={200: SmtpUserDetailOut, **AUTH_ERRORS})
def show_smtp_user(request: HttpRequest, pk: int) -> Any:
    return _detail(_user(request, pk))


@router.patch("/smtp-users/{pk}", response={200: SmtpUserDetailOut, **AUTH_ERRORS})
def update_smtp_user(request: HttpRequest, pk: int, body: SmtpUserPatch) -> Any:
    """Change only the fields given (`hourly_limit: null` removes the limit)."""
    actor = writer(request)
    user = _user(request, pk)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("priority", 0) is None or changes.get("active", False) is None:
        raise ApiError(422, "invalid", "priority and active cannot be null.")
    for text in ("name", "note"):
        if text in changes and changes[text] is None:
            changes[text] = ""
    smtp_users.update_smtp_user(user, changes, actor=actor)
    user.refresh_from_db()
    return _detail(user)


@router.delete("/smtp-users/{pk}", response={204: None, **AUTH_ERRORS})
def delete_smtp_user(request: HttpRequest, pk: int) -> Any:
    """Delete an SMTP+ user, its authorized senders and its send keys; its credentials
    stop working on the relay within about 2 seconds (open sessions included). Its messages stay in the log."""
    actor = writer(request)
    smtp_users.delete_smtp_user(_user(request, pk), actor=actor)
    return Status(204, None)


@router.get("/smtp-users/{pk}/can-send-as", response={200: CanSendAsOut, **AUTH_ERRORS})
def check_sender(request: HttpRequest, pk: int, query: Query[SenderQuery]) -> Any:
    """May this SMTP+ user send as `address`? The relay's own decision (envelope and
    From: header alike), with the rule that allows it or why not."""
    decision = can_send_as(_user(request, pk), query.address)
    return {"address": query.address, "allowed": decision.allowed, "reason": decision.reason}


@router.post("/smtp-users/{pk}/enable", response={200: SmtpUserDetailOut, **AUTH_ERRORS})
def enable_smtp_user(request: HttpRequest, pk: int) -> Any:
    actor = writer(request)
    user = _user(request, pk)
    smtp_users.set_active(user, True, actor=actor)
    return _detail(user)


@router.post("/smtp-users/{pk}/disable", response={200: SmtpUserDetailOut, **AUTH_ERRORS})
def disable_smtp_user(request: HttpRequest, pk: int) -> Any:
    actor = writer(request)
    user = _user(request, pk)
    smtp_users.set_active(user, False, actor=actor)
    return _detail(user)


@router.post("/smtp-users/{pk}/reset-password", response={200: CredentialsOut, **AUTH_ERRORS})
def reset_password(request: HttpRequest, pk: int) -> Any:
    """A new password; the relay refuses the old one within about 2 seconds
    (open sessions included)."""
    actor = writer(request)
    user = _user(request, pk)
    return {"id": user.pk, "username": user.username,
            "password": smtp_users.reset_password(user, actor=actor)}


@router.post("/smtp-users/{pk}/reveal-password", response={200: CredentialsOut, **AUTH_ERRORS})
def reveal_password(request: HttpRequest, pk: int) -> Any:
    """The current password (admin keys only; every reveal is in the audit log)."""
    actor = writer(request)
    user = _user(request, pk)
    return {"id": user.pk, "username": user.username,
            "password": smtp_users.reveal_password(user, actor=actor)}


@router.get("/smtp-users/{pk}/senders", response={200: SendersOut, **AUTH_ERRORS})
def list_senders(request: HttpRequest, pk: int) -> Any:
    return _senders(_user(request, pk))


@router.post("/smtp-users/{pk}/senders", response={200: SendersAddedOut, **AUTH_ERRORS})
def add_senders(request: HttpRequest, pk: int, body: SendersIn) -> Any:
    """Authorize domains and addresses; entries already authorized are left as they are."""
    actor = writer(request)
    user = _user(request, pk)
    result = _add_senders(user, body, actor)
    return {**_senders(user), "added": result.added_display, "unchanged": result.unchanged,
            "warnings": [f"{entry}: {advice}" for entry, advice in result.warnings]}


@router.delete("/smtp-users/{pk}/senders/domains/{entry}", response={204: None, **AUTH_ERRORS})
def remove_domain(request: HttpRequest, pk: int, entry: int) -> Any:
    actor = writer(request)
    found = AuthorizedDomain.objects.filter(pk=entry, smtp_user=_user(request, pk)).first()
    if found is None:
        raise not_found("authorized domain")
    senders.remove_sender(found, actor=actor)
    return Status(204, None)


@router.delete("/smtp-users/{pk}/senders/emails/{entry}", response={204: None, **AUTH_ERRORS})
def remove_email(request: HttpRequest, pk: int, entry: int) -> Any:
    actor = writer(request)
    found = AuthorizedEmail.objects.filter(pk=entry, smtp_user=_user(request, pk)).first()
    if found is None:
        raise not_found("authorized address")
    senders.remove_sender(found, actor=actor)
    return Status(204, None)


class AuditEventOut(Schema):
    id: int
    created: datetime
    actor: str = Field(alias="actor_label")
    action: str
    target_type: str
    target_id: str
    target_label: str
    details: dict[str, Any]
    ip: str | None


class AuditPageOut(Schema):
    items: list[AuditEventOut]
    older: int | None = Field(description="Pass as `before` for the next (older) page.")


class AuditFilters(Schema):
    action: str = ""
    actor: str = ""
    target: str = ""
    date_from: str = Field("", description="YYYY-MM-DD")
    date_to: str = Field("", description="YYYY-MM-DD")
    before: int | None = Field(None, description="Events older than this id.")


@audit_router.get("/audit-log", response={200: AuditPageOut, **AUTH_ERRORS})
def audit_log(request: HttpRequest, filters: Query[AuditFilters]) -> Any:
    """The account's audit events, newest first, with the console's filters."""
    account = account_of(request)
    params = filters.model_dump(exclude={"before"})
    form = AuditFilterForm({k: v for k, v in params.items() if v}, account=account)
    if not form.is_valid():
        raise ApiError(422, "invalid_filters", form_errors(form))
    events = filter_events(account, form.cleaned_data).order_by("-id")
    if filters.before is not None:
        events = events.filter(id__lt=filters.before)
    rows = list(events[: AUDIT_PAGE_SIZE + 1])
    older = rows[AUDIT_PAGE_SIZE - 1].pk if len(rows) > AUDIT_PAGE_SIZE else None
    return {"items": rows[:AUDIT_PAGE_SIZE], "older": older}
