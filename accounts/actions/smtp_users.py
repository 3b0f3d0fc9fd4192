"""State changes on accounts and SMTP+ users: each writes its audit row itself."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from accounts import audit
from accounts.audit import Actor
from accounts.credentials import USERNAME_ALPHABET, generate_password
from accounts.models import (
    Account,
    AuthorizedDomain,
    AuthorizedEmail,
    Membership,
    Role,
    SmtpUser,
)


def generate_username() -> str:
    """A short, unique, unambiguous username such as `smtp-k7q2m9xd`."""
    while True:
        name = "smtp-" + "".join(secrets.choice(USERNAME_ALPHABET) for _ in range(8))
        if not SmtpUser.objects.filter(username=name).exists():
            return name


def unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "account"
    slug, n = base, 2
    while Account.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def create_account(
    name: str,
    owner_email: str,
    password: str | None = None,
    actor: Actor | None = None,
) -> tuple[Account, AbstractBaseUser, str | None]:
    """Create an account with an owner. Returns (account, owner, new password or None).

    If a console user with that email exists it becomes the owner and keeps its password
    (None is returned); otherwise one is created with `password` or a generated one.
    """
    User = get_user_model()
    email = owner_email.strip().lower()
    account = Account.objects.create(name=name.strip(), slug=unique_slug(name))
    user = User.objects.filter(username=email).first()
    new_password: str | None = None
    if user is None:
        new_password = password or secrets.token_urlsafe(15)
        user = User.objects.create_user(username=email, email=email, password=new_password)
    Membership.objects.create(account=account, user=user, role=Role.OWNER)
    audit.record(
        "account.create", account=account, actor=actor, target=account,
        details={"owner": email},
    )
    return account, user, new_password


@transaction.atomic
def create_smtp_user(
    account: Account,
    *,
    name: str = "",
    note: str = "",
    priority: int = 3,
    hourly_limit: int | None = None,
    actor: Actor | None = None,
) -> tuple[SmtpUser, str]:
    """Create an SMTP+ user with a generated username and password; returns both."""
    password = generate_password()
    user = SmtpUser(
        account=account,
        name=name.strip(),
        username=generate_username(),
        note=note,
        priority=priority,
        hourly_limit=hourly_limit,
    )
    user.set_password(password)
    user.save()
    audit.record(
        "smtpuser.create", account=account, actor=actor, target=user,
        target_label=f"{user.name} ({user.username})" if user.name else user.username,
    )
    return user, password


@transaction.atomic
def reset_password(smtp_user: SmtpUser, actor: Actor | None = None) -> str:
    """Give the user a new password; the relay refuses the old one within about 2
    seconds (new logins and open connections alike: `relay.smtp.revocation`)."""
    password = generate_password()
    smtp_user.set_password(password)
    smtp_user.save(update_fields=["password_encrypted", "password_digest", "changed"])
    smtp_user.mark_changed(password=True)
    audit.record(
        "smtpuser.reset_password", account=smtp_user.account, actor=actor, target=smtp_user,
        target_label=smtp_user.username,
    )
    return password


@transaction.atomic
def set_active(smtp_user: SmtpUser, active: bool, actor: Actor | None = None) -> None:
    smtp_user.active = active
    smtp_user.save(update_fields=["active", "changed"])
    smtp_user.mark_changed()
    audit.record(
        "smtpuser.enable" if active else "smtpuser.disable", account=smtp_user.account,
        actor=actor, target=smtp_user, target_label=smtp_user.username,
    )


def reveal_password(smtp_user: SmtpUser, actor: Actor | None = None) -> str:
    """Decrypt the password for display, recording who saw it."""
    audit.record(
        "smtpuser.reveal", account=smtp_user.account, actor=actor, target=smtp_user,
        target_label=smtp_user.username,
    )
    return smtp_user.get_password()


EDITABLE_FIELDS = ("name", "note", "priority", "hourly_limit")


@transaction.atomic
def update_smtp_user(
    smtp_user: SmtpUser,
    changes: dict[str, object],
    actor: Actor | None = None,
) -> dict[str, list[object]]:
    """Apply edits to name/note/priority/hourly limit (and `active` via `set_active`).

    Returns {field: [old, new]} for what actually changed; that is also the audit detail.
    """
    diff: dict[str, list[object]] = {}
    for field_name in EDITABLE_FIELDS:
        if field_name not in changes:
            continue
        new = changes[field_name]
        if field_name == "name" and isinstance(new, str):
            new = new.strip()
        old = getattr(smtp_user, field_name)
        if old != new:
            diff[field_name] = [old, new]
            setattr(smtp_user, field_name, new)
    if diff:
        smtp_user.save(update_fields=[*diff, "changed"])
        smtp_user.mark_changed()  # priority and hourly limit apply to open sessions
        audit.record(
            "smtpuser.edit", account=smtp_user.account, actor=actor, target=smtp_user,
            target_label=smtp_user.username, details={"changed": diff},
        )
    if "active" in changes and bool(changes["active"]) != smtp_user.active:
        set_active(smtp_user, bool(changes["active"]), actor=actor)
        diff["active"] = [not smtp_user.active, smtp_user.active]
    return diff


@transaction.atomic
def delete_smtp_user(smtp_user: SmtpUser, actor: Actor | None = None) -> None:
    """Delete an SMTP+ user and its authorized senders; its credentials stop working
    (and its open relay sessions are closed: a relay sees the row gone)."""
    audit.record(
        "smtpuser.delete", account=smtp_user.account, actor=actor, target=smtp_user,
        target_label=f"{smtp_user.name} ({smtp_user.username})" if smtp_user.name
        else smtp_user.username,
        details={
            "domains": list(
                AuthorizedDomain.objects.filter(smtp_user=smtp_user).values_list("domain", flat=True)
            ),
            "emails": list(
                AuthorizedEmail.objects.filter(smtp_user=smtp_user).values_list("email", flat=True)
            ),
        },
    )
    smtp_user.delete()
