"""Authorized senders on the user's page: add in bulk, remove, toggle subdomains, test."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect

from accounts.actions import senders
from accounts.audit import Actor
from accounts.forms import SendAsForm, SendersForm
from accounts.models import AuthorizedDomain, AuthorizedEmail, Role, SmtpUser
from accounts.senders import InvalidEntry, can_send_as
from accounts.tenancy import AccountRequest, member_required
from accounts.views.users import (
    post_required,
    render_detail,
    scoped_user,
    show_senders_result_next,
)


def senders_section(smtp_user: SmtpUser) -> HttpResponse:
    """Back to the senders section of the user's page."""
    return redirect(f"{smtp_user.get_absolute_url()}#senders")


@member_required(Role.ADMIN)
def senders_add(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    if not_allowed := post_required(request):
        return not_allowed
    form = SendersForm(request.POST)
    if not form.is_valid():
        return render_detail(request, smtp_user, senders_form=form, status=400)
    try:
        result = senders.add_senders(
            smtp_user,
            domains_text=form.cleaned_data["domains"],
            emails_text=form.cleaned_data["emails"],
            include_subdomains=form.cleaned_data["include_subdomains"],
            actor=Actor.from_request(request),
        )
    except senders.TooManySenders as exc:
        form.add_error(None, f"Not saved: {exc}")
        return render_detail(request, smtp_user, senders_form=form, status=400)
    if result.needs_attention:
        # Keep only the entries that still need fixing in the boxes.
        retry = {
            "domains": "\n".join(entry for entry, _ in result.domain_errors),
            "emails": "\n".join(entry for entry, _ in result.email_errors),
            "include_subdomains": form.cleaned_data["include_subdomains"],
        }
        show_senders_result_next(request, smtp_user, result, retry)
        return senders_section(smtp_user)
    if result.changed:
        messages.success(request, "Authorized: " + ", ".join(result.added_display) + ".")
    if result.unchanged:
        messages.info(request, "Already authorized: " + ", ".join(result.unchanged) + ".")
    return senders_section(smtp_user)


def _remove(request: AccountRequest, entry: AuthorizedDomain | AuthorizedEmail) -> HttpResponse:
    """Remove an entry found through its user's related manager (so `entry.smtp_user` is
    that user, with its account, and costs no query)."""
    if not_allowed := post_required(request):
        return not_allowed
    senders.remove_sender(entry, actor=Actor.from_request(request))
    noun = "Domain" if isinstance(entry, AuthorizedDomain) else "Address"
    messages.success(request, f"{noun} {entry.display} is no longer authorized.")
    return senders_section(entry.smtp_user)


@member_required(Role.ADMIN)
def domain_remove(request: AccountRequest, pk: int, entry_pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    return _remove(request, get_object_or_404(smtp_user.authorized_domains, pk=entry_pk))


@member_required(Role.ADMIN)
def email_remove(request: AccountRequest, pk: int, entry_pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    return _remove(request, get_object_or_404(smtp_user.authorized_emails, pk=entry_pk))


@member_required(Role.ADMIN)
def domain_subdomains(request: AccountRequest, pk: int, entry_pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    entry = get_object_or_404(smtp_user.authorized_domains, pk=entry_pk)
    if not_allowed := post_required(request):
        return not_allowed
    include = request.POST.get("include_subdomains") == "1"
    try:
        changed = senders.set_include_subdomains(entry, include, actor=Actor.from_request(request))
    except InvalidEntry as exc:
        messages.error(request, f"Subdomains of {entry.display} cannot be authorized: {exc}.")
        return senders_section(smtp_user)
    if changed:
        messages.success(
            request,
            f"Subdomains of {entry.display} are now authorized too." if include
            else f"Only {entry.display} itself is authorized now, not its subdomains.",
        )
    return senders_section(smtp_user)


@member_required()
def send_as(request: AccountRequest, pk: int) -> HttpResponse:
    """Read-only, so GET: viewers may ask too, and the answer can be bookmarked."""
    smtp_user = scoped_user(request, pk)
    form = SendAsForm(request.GET or None)
    decision = can_send_as(smtp_user, form.cleaned_data["address"]) if form.is_valid() else None
    return render_detail(request, smtp_user, send_as_form=form, decision=decision)
