"""/api/v1/sending-domains: the account's sending domains, their status and the records
to publish; add one, check one now, remove one. Through `accounts.actions.domains`, like the console
and `manage.py domain`, so the rules and the audit rows are the same."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from accounts.actions import domains as domain_actions
from accounts.api.auth import AUTH_ERRORS, ApiError, account_of, not_found, writer
from accounts.domains.ownership import domain_data
from accounts.models import SendingDomain
from smtpplus.addresses import InvalidEntry

router = Router(tags=["Sending domains"])


class RecordOut(Schema):
    name: str
    type: str
    value: str
    zone_line: str


class FindingOut(Schema):
    check: str
    severity: str = Field(description="ok, info, warning, error or unknown (could not check).")
    title: str
    explanation: str
    fix: str
    record_name: str
    record_type: str


class SendingDomainOut(Schema):
    id: int
    domain: str = Field(description="A-label.")
    display: str = Field(description="As people read it (U-label).")
    status: str = Field(description="unverified, verified or lapsed.")
    verified_how: str = Field(description="dns, upgrade, operator, or empty.")
    verified_at: datetime | None
    include_subdomains: bool
    last_checked_at: datetime | None
    record_missing_since: datetime | None
    lapses_at: datetime | None
    verification_record: RecordOut
    verdict: str | None = Field(description="The worst severity of the last check.")
    findings: list[FindingOut]


class AuthorizationOut(Schema):
    smtp_user: str = Field(description="The SMTP+ user's username.")
    kind: str = Field(description="domain or email.")
    sender: str = Field(description="The domain (A-label) or the address.")
    display: str


class SendingDomainRemovedOut(Schema):
    domain: str
    removed: bool
    removed_authorizations: list[AuthorizationOut] = Field(
        description="The SMTP+ users' authorizations at the domain, removed with it.")


class SendingDomainIn(Schema):
    domain: str
    include_subdomains: bool = False


def _out(domain: SendingDomain) -> dict[str, Any]:
    return {"id": domain.pk, **domain_data(domain)}


def _domain(request: HttpRequest, pk: int) -> SendingDomain:
    domain = SendingDomain.objects.select_related("account").filter(
        pk=pk, account=account_of(request)).first()
    if domain is None:
        raise not_found("sending domain")
    return domain


@router.get("/sending-domains", response={200: list[SendingDomainOut], **AUTH_ERRORS})
def list_sending_domains(request: HttpRequest) -> Any:
    rows = SendingDomain.objects.select_related("account").filter(account=account_of(request))
    return [_out(d) for d in rows.order_by("domain")]


@router.post("/sending-domains", response={201: SendingDomainOut, **AUTH_ERRORS})
def add_sending_domain(request: HttpRequest, body: SendingDomainIn) -> Any:
    """Add an unverified domain; publish its `verification_record`, then check it."""
    actor = writer(request)
    try:
        domain = domain_actions.add_domain(account_of(request), body.domain,
                                           include_subdomains=body.include_subdomains,
                                           actor=actor)
    except InvalidEntry as exc:
        raise ApiError(422, "invalid_domain", f"{body.domain}: {exc}") from exc
    return Status(201, _out(domain))


@router.get("/sending-domains/{pk}", response={200: SendingDomainOut, **AUTH_ERRORS})
def show_sending_domain(request: HttpRequest, pk: int) -> Any:
    return _out(_domain(request, pk))


@router.post("/sending-domains/{pk}/check", response={200: SendingDomainOut, **AUTH_ERRORS})
def check_sending_domain(request: HttpRequest, pk: int) -> Any:
    """Look the domain's records up now (verifies it when its token is published)."""
    actor = writer(request)
    domain = _domain(request, pk)
    domain_actions.check_domain(domain, actor=actor)
    domain.refresh_from_db()
    return _out(domain)


@router.delete("/sending-domains/{pk}", response={200: SendingDomainRemovedOut, **AUTH_ERRORS})
def remove_sending_domain(request: HttpRequest, pk: int) -> Any:
    """Remove the domain: the account's SMTP+ users can no longer send as it, and their
    authorizations at it (domains, and addresses never confirmed by their link) are removed
    with it, each audited."""
    actor = writer(request)
    domain = _domain(request, pk)
    name = domain.domain
    removed = domain_actions.remove_domain(domain, actor=actor)
    return {"domain": name, "removed": True, "removed_authorizations": removed}
