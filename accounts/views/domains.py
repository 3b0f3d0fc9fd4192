"""The Sending domains pages: the account's domains with their status, one domain with
every record to publish and its last check, "Check now", add and remove.

Owners and admins change; viewers read. Every query is scoped to the current account:
another account's domain is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.actions import domains as domain_actions
from accounts.audit import Actor
from accounts.domains import ownership
from accounts.domains.findings import ordered, worst
from accounts.domains.health import HEALTH_CHECKS
from accounts.models import Role, SendingDomain
from accounts.tenancy import AccountRequest, member_required
from smtpplus.addresses import InvalidEntry


def _domain(request: AccountRequest, pk: int) -> SendingDomain:
    return get_object_or_404(SendingDomain, pk=pk, account=request.account)


def _list_page(request: AccountRequest, entry: str = "", error: str = "",
               status: int = 200) -> HttpResponse:
    rows = SendingDomain.objects.filter(account=request.account).order_by("domain")
    listed = []
    for row in rows:
        found = [f for group in ownership.findings_by_check(row.check_result).values() for f in group]
        listed.append({"domain": row, "verdict": worst(found) if found else ""})
    return render(request, "accounts/domains/list.html", {
        "domains": listed, "entry": entry or request.GET.get("domain", ""), "error": error,
    }, status=status)


@member_required(Role.VIEWER)
def domain_list(request: AccountRequest) -> HttpResponse:
    return _list_page(request)


@member_required(Role.ADMIN)
@require_POST
def domain_add(request: AccountRequest) -> HttpResponse:
    entry = request.POST.get("domain", "").strip()
    try:
        domain = domain_actions.add_domain(
            request.account, entry, include_subdomains=bool(request.POST.get("include_subdomains")),
            actor=Actor.from_request(request))
    except InvalidEntry as exc:
        return _list_page(request, entry, f"{entry or 'The domain'}: {exc}", status=400)
    messages.success(request, f"{domain.display} added. Publish the record below, then Check now.")
    return redirect("accounts:domain_detail", pk=domain.pk)


@member_required(Role.VIEWER)
def domain_detail(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    grouped = ownership.findings_by_check(domain.check_result)
    found = [f for group in grouped.values() for f in group]
    return render(request, "accounts/domains/detail.html", {
        "domain": domain,
        "zone_line": ownership.zone_line(domain.verification_name, domain.verification_value),
        "verification": ordered(grouped.get(ownership.CHECK_NAME, [])),
        # Findings of the other checks (DKIM…), for the health section; SPF and DMARC are
        # the health include's (accounts/domains/_health.html).
        "other_findings": ordered([f for f in found if f.check != ownership.CHECK_NAME
                                   and f.check not in HEALTH_CHECKS]),
        "verdict": worst(found) if found else "",
        "lapses_at": ownership.lapse_deadline(domain) if ownership.can_lapse(domain) else None,
        # What "Remove domain" takes with it, said before the button is pressed.
        "removal": domain_actions.authorization_data(ownership.authorizations_at(domain)),
        # Optional sections: the first template that exists is shown.
        "dkim_templates": ["accounts/domains/_dkim_records.html", "accounts/domains/_none.html"],
        "health_templates": ["accounts/domains/_health.html", "accounts/domains/_none.html"],
    })


@member_required(Role.ADMIN)
@require_POST
def domain_check(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    was = domain.status
    domain_actions.check_domain(domain, actor=Actor.from_request(request))
    domain.refresh_from_db()
    if domain.status != was:
        messages.success(request, f"{domain.display} is now {domain.get_status_display().lower()}.")
    else:
        messages.info(request, f"{domain.display} checked: {domain.get_status_display().lower()}.")
    return redirect("accounts:domain_detail", pk=domain.pk)


@member_required(Role.ADMIN)
@require_POST
def domain_subdomains(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    include = request.POST.get("include_subdomains") == "1"
    if domain_actions.set_include_subdomains(domain, include, actor=Actor.from_request(request)):
        messages.success(request, f"Subdomains of {domain.display} "
                                  f"{'may now' if include else 'may no longer'} be authorized.")
    return redirect("accounts:domain_detail", pk=domain.pk)


@member_required(Role.ADMIN)
@require_POST
def domain_remove(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    name = domain.display
    removed = domain_actions.remove_domain(domain, actor=Actor.from_request(request))
    also = ""
    if removed:
        listed = ", ".join(f"{r['display']} ({r['smtp_user']})" for r in removed[:10])
        more = f" and {len(removed) - 10} more" if len(removed) > 10 else ""
        also = f" Authorizations removed with it: {listed}{more}."
    messages.success(request, f"{name} removed: this account's SMTP+ users can no longer "
                              f"send as it.{also}")
    return redirect("accounts:domain_list")
