"""Tenant isolation: a member of one account gets a 404 for every console URL that names
another account's object, and list pages show nothing of the other account.

The test is generic: it walks every URL pattern of the console, discovers every model of
our apps that belongs to an account (directly or through smtp_user, message, rule …),
and gives the other account ("Globex") one row of each. A page added later is covered
without touching this file.
"""

from __future__ import annotations

import itertools
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path
from django.utils import timezone

from accounts.actions.smtp_users import create_account, generate_username
from accounts.models import (
    Account,
    AuditEvent,
    AuthorizedDomain,
    AuthorizedEmail,
    Invitation,
    Membership,
    Role,
    SmtpUser,
)
from tests.conftest import PASSWORD

# Globex's rows get ids far above anything a sequence hands out in a test run, so an id
# of Globex is never also the id of one of Initech's own rows.
GLOBEX_PK = 7_100_001
GLOBEX_IP = "192.0.2.71"
INITECH_PK = 7_200_001
PROJECT_APPS = ("accounts", "relay", "alerts")
# Not console pages, or public by design (the invitation token is its own credential).
# api/: the API answers with JSON 401/404 instead of the login page (tests/api cover it).
SKIP_PREFIXES = ("admin/", "login/", "logout/", "password/", "static/", "invite/", "api/")
SKIP_NAMES = {"login", "logout", "password_change", "password_change_done", "invite_accept"}
# Query parameters list pages may use to filter by an object; tried with Globex's ids.
ID_PARAMS = ("user", "smtp_user", "smtpuser", "rule", "message", "recipient", "account", "id", "pk")

CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


# --- the console's URLs -----------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # "users/<int:pk>/", prefixes included
    name: str
    converters: tuple[tuple[str, str], ...]  # ((name, converter), ...)

    @property
    def int_kwargs(self) -> list[str]:
        return [name for name, conv in self.converters if conv == "int"]

    @property
    def only_int_kwargs(self) -> bool:
        return all(conv == "int" for _, conv in self.converters)

    def url(self, values: dict[str, int]) -> str:
        return "/" + CONVERTER.sub(lambda m: str(values[m.group("name")]), self.route)


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route | str]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            if not hasattr(p.pattern, "_route"):
                yield f"{prefix}{p.pattern} (regex include)"
                continue
            yield from _walk(p.url_patterns, prefix + p.pattern._route, ns)
        elif isinstance(p, URLPattern):
            if not hasattr(p.pattern, "_route"):
                yield f"{prefix}{p.pattern} (regex)"
                continue
            route = prefix + p.pattern._route
            converters = tuple(
                (m.group("name"), m.group("converter") or "str") for m in CONVERTER.finditer(route)
            )
            yield Route(route, f"{namespace}{p.name or ''}", converters)


def console_routes(urlconf: str | None = None) -> tuple[list[Route], list[str]]:
    """Every console route, and a description of every pattern that was not checked."""
    routes, skipped = [], []
    for item in _walk(get_resolver(urlconf).url_patterns):
        if isinstance(item, str):
            if not item.startswith(SKIP_PREFIXES):
                skipped.append(item)
            continue
        if item.route.startswith(SKIP_PREFIXES) or item.name.split(":")[-1] in SKIP_NAMES:
            continue
        routes.append(item)
    return routes, skipped


# --- the other account's objects --------------------------------------------------------


def account_path(model: type[models.Model], depth: int = 3) -> str | None:
    """The ORM lookup from `model` to its Account ("account", "message__account" …)."""
    if model is Account:
        return ""
    if depth == 0:
        return None
    fks = [
        f for f in model._meta.concrete_fields
        if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is not None
    ]
    for f in fks:
        if f.related_model is Account:
            return f.name
    for f in fks:
        target = f.related_model
        if target._meta.app_label in PROJECT_APPS and target is not model:
            rest = account_path(target, depth - 1)
            if rest:
                return f"{f.name}__{rest}"
    return None


def scoped_models() -> list[tuple[type[models.Model], str]]:
    found = []
    for label in PROJECT_APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        for model in config.get_models():
            lookup = account_path(model)
            if lookup is not None:
                found.append((model, lookup))
    return found


def rows_of(account: Account, model: type[models.Model], lookup: str) -> models.QuerySet[Any]:
    key = f"{lookup}__pk" if lookup else "pk"
    return model._default_manager.filter(**{key: account.pk})


def _value_for(f: models.Field[Any, Any], model: type[models.Model], tag: str) -> Any:
    """A plausible value for a required field, tagged with the account's name where text."""
    text = f"{tag} {model._meta.model_name} {f.name}"
    if f.choices:
        return f.choices[0][0]
    if f.has_default():
        return f.get_default()
    if isinstance(f, models.EmailField):
        return f"{f.name}@{tag}-secret.test"
    if isinstance(f, models.URLField):
        return f"https://hooks.{tag}-secret.test/"
    if isinstance(f, models.GenericIPAddressField):
        # A unique address (a client's cool-off) differs per account.
        return f"192.0.2.{zlib.crc32(tag.encode()) % 200 + 1}" if f.unique else "192.0.2.250"
    if isinstance(f, models.SlugField):
        return f"{tag}-{model._meta.model_name}-{f.name}"[: f.max_length]
    if isinstance(f, models.CharField | models.TextField):
        return text[: f.max_length] if f.max_length else text
    if isinstance(f, models.BooleanField):
        return False
    if isinstance(f, models.IntegerField | models.FloatField | models.DecimalField):
        return 1
    if isinstance(f, models.DateTimeField):
        return timezone.now()
    if isinstance(f, models.DateField):
        return timezone.now().date()
    if isinstance(f, models.DurationField):
        return timedelta(minutes=1)
    if isinstance(f, models.JSONField):
        return {}
    if isinstance(f, models.BinaryField):
        return text.encode()
    if isinstance(f, models.UUIDField):
        return uuid.uuid4()
    raise TypeError(f"no test value for {model.__name__}.{f.name} ({type(f).__name__})")


def make_generic(
    model: type[models.Model], made: dict[type[models.Model], models.Model], pk: int, tag: str
) -> models.Model:
    """One row of `model` linked to the account's rows in `made`."""
    values: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        if (f.primary_key and not f.is_relation) or getattr(f, "auto_now", False) \
                or getattr(f, "auto_now_add", False):
            continue  # a primary key that is a link (one row per account) is filled below
        if f.is_relation:
            target = made.get(f.related_model)
            if target is None and not f.null:
                raise LookupError(f"{model.__name__}.{f.name} needs a {f.related_model.__name__}")
            values[f.name] = target
        elif not (f.null and not f.has_default()):
            values[f.name] = _value_for(f, model, tag)
    if model._meta.pk.get_internal_type().endswith("AutoField"):
        values["pk"] = pk
    obj = model(**values)
    obj.save(force_insert=True)
    for m2m in model._meta.many_to_many:
        if m2m.related_model in made:
            getattr(obj, m2m.name).add(made[m2m.related_model])
    return obj


@dataclass
class World:
    dave: Any
    initech: Account
    globex: Account
    needles: list[str]
    ids: list[int]
    not_created: list[str] = field(default_factory=list)


def populate(
    account: Account, owner: Any, pk: int, tag: str, ip: str
) -> tuple[dict[type[models.Model], models.Model], list[str]]:
    """Give `account` one row of every model that belongs to an account, each with id `pk`
    and texts containing `tag`. Returns the rows and the models that could not be made."""
    from relay.models import Attempt, ConnectionStat, EventKind, Message, Recipient, RelayEvent

    now, Tag = timezone.now(), tag.capitalize()
    domain = f"{tag}-secret.test"
    smtp = SmtpUser(pk=pk, account=account, name=f"{Tag} CRM", username=generate_username())
    smtp.set_password(f"{tag}-password-not-for-your-eyes")
    smtp.save(force_insert=True)
    message = Message.objects.create(
        pk=pk, account=account, smtp_user=smtp, queue_id=f"{tag.upper()}Q{pk}",
        envelope_from=f"billing@{domain}", header_from=f"{Tag} <billing@{domain}>",
        subject=f"{Tag} quarterly figures", message_id=f"<q1@{domain}>", size=321,
        client_ip=ip, raw=f"Subject: {Tag} quarterly figures\r\n\r\n{tag} body\r\n".encode(),
    )
    recipient = Recipient.objects.create(
        pk=pk, message=message, account=account, smtp_user=smtp,
        address=f"ceo@{tag}-partner.test", status="failed", last_code=550,
        last_text=f"5.1.1 {tag} mailbox unknown",
    )
    made: dict[type[models.Model], models.Model] = {
        Account: account,
        get_user_model(): owner,
        SmtpUser: smtp,
        AuthorizedDomain: AuthorizedDomain.objects.create(pk=pk, smtp_user=smtp, domain=domain),
        AuthorizedEmail: AuthorizedEmail.objects.create(pk=pk, smtp_user=smtp, email=f"billing@{domain}"),
        Message: message,
        Recipient: recipient,
        Attempt: Attempt.objects.create(
            pk=pk, recipient=recipient, upstream=f"smtp://mx.{tag}-partner.test", code=550,
            text=f"5.1.1 {tag} mailbox unknown", outcome="failed",
        ),
        RelayEvent: RelayEvent.objects.create(
            pk=pk, account=account, smtp_user=smtp, kind=EventKind.SENDER_REJECTED,
            client_ip=ip, port=2525, username=smtp.username,
            address=f"ceo@{domain}", reason=f"{tag} sender not authorized",
        ),
        ConnectionStat: ConnectionStat.objects.create(
            pk=pk, hour=now.replace(minute=0, second=0, microsecond=0), port=2525,
            smtp_user=smtp, connections=3, logins=2,
        ),
        AuditEvent: AuditEvent.objects.create(
            pk=pk, account=account, actor=owner, actor_label=owner.get_username(),
            action="smtpuser.create", target_type="smtpuser", target_id=str(pk),
            target_label=f"{Tag} CRM", details={"note": f"{tag} audit detail"}, ip=ip,
        ),
        Invitation: Invitation.objects.create(
            pk=pk, account=account, email=f"newhire@{domain}", role=Role.ADMIN,
            token_digest=f"{pk:064x}", invited_by=owner, expires=now + timedelta(days=7),
        ),
    }
    membership = Membership.objects.filter(account=account, user=owner).first()
    made[Membership] = membership or Membership.objects.create(
        pk=pk, account=account, user=owner, role=Role.OWNER
    )
    # Every other model that belongs to an account (alert rules, alerts, notifications …,
    # and whatever is added later) gets one generic row, dependencies first.
    pending = [m for m, _ in scoped_models() if m not in made]
    errors: dict[type[models.Model], str] = {}
    while pending:
        progressed = False
        for model in list(pending):
            try:
                made[model] = make_generic(model, made, pk, tag)
            except LookupError as exc:
                errors[model] = str(exc)
                continue
            pending.remove(model)
            progressed = True
        if not progressed:
            break
    return made, [f"{m.__name__}: {errors.get(m, '?')}" for m in pending]


@pytest.fixture
def world(db) -> World:
    User = get_user_model()
    charlie = User.objects.create_user(
        pk=GLOBEX_PK, username="charlie@globex.test", email="charlie@globex.test", password=PASSWORD
    )
    globex = Account.objects.create(pk=GLOBEX_PK, name="Globex Secret Corp", slug="globex-secret")
    made, not_created = populate(globex, charlie, GLOBEX_PK, "globex", GLOBEX_IP)
    initech, dave, _ = create_account("Initech", "dave@initech.test", password=PASSWORD)

    theirs: set[int] = {charlie.pk}
    ours: set[int] = {dave.pk}
    for model, lookup in scoped_models():
        theirs.update(rows_of(globex, model, lookup).values_list("pk", flat=True))
        ours.update(rows_of(initech, model, lookup).values_list("pk", flat=True))
    smtp = made[SmtpUser]
    needles = ["globex", smtp.username, "charlie@", GLOBEX_IP]
    return World(dave, initech, globex, needles, sorted(theirs - ours), not_created)


# --- the checks -------------------------------------------------------------------------


def leaks(body: bytes, needles: list[str]) -> list[str]:
    text = body.decode("utf-8", "replace").lower()
    return [n for n in needles if n.lower() in text]


def object_url_failures(
    client: Client, routes: list[Route], ids: list[int], needles: list[str],
    own_ids: tuple[int, ...] = (),
) -> list[str]:
    """GET and POST every id route with `ids` (and `own_ids`: combinations that name at
    least one of `ids`) and report each answer that is not a 404/405 or shows a needle."""
    failures = []
    for route in routes:
        names = route.int_kwargs
        if not names or not route.only_int_kwargs:
            continue
        for combo in itertools.product([*ids, *own_ids], repeat=len(names)):
            if not set(combo) & set(ids):
                continue
            url = route.url(dict(zip(names, combo, strict=True)))
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                if response.status_code not in (404, 405):
                    failures.append(f"{method.upper()} {url} ({route.name}) answered {response.status_code}")
                elif found := leaks(response.content, needles):
                    failures.append(f"{method.upper()} {url} ({route.name}) 404 page shows {found}")
    return failures


def list_page_failures(client: Client, routes: list[Route], ids: list[int], needles: list[str]) -> list[str]:
    failures = []
    for route in routes:
        if route.converters:
            continue
        url = route.url({})
        for params in ({}, {p: ids[0] for p in ID_PARAMS}):
            response = client.get(url, params)
            if found := leaks(response.content, needles):
                failures.append(f"GET {url}?{'&'.join(params)} ({route.name}) shows {found}")
    return failures


def test_the_setup_gives_globex_a_row_of_every_model_that_belongs_to_an_account(world):
    assert world.not_created == [], f"could not create Globex rows: {world.not_created}"
    for model, lookup in scoped_models():
        assert rows_of(world.globex, model, lookup).exists(), f"Globex has no {model.__name__}"
    assert GLOBEX_PK in world.ids
    routes, skipped = console_routes()
    assert skipped == [], f"console patterns this test cannot walk: {skipped}"
    assert any(r.int_kwargs for r in routes), "no console route takes an object id"


def test_every_console_url_with_another_accounts_ids_answers_404(client, world):
    client.force_login(world.dave)
    routes, _ = console_routes()
    failures = object_url_failures(client, routes, world.ids, world.needles)
    assert not failures, "tenant isolation broken:\n" + "\n".join(failures)


def test_list_pages_show_nothing_of_another_account(client, world):
    client.force_login(world.dave)
    routes, _ = console_routes()
    failures = list_page_failures(client, routes, world.ids, world.needles)
    assert not failures, "another account's data shown:\n" + "\n".join(failures)


def test_urls_that_mix_own_and_another_accounts_ids_answer_404(client, world):
    """users/<own user>/senders/domains/<their domain>/remove/ must not reach their row."""
    _, not_created = populate(world.initech, world.dave, INITECH_PK, "initech", "198.51.100.7")
    assert not_created == []
    client.force_login(world.dave)
    routes, _ = console_routes()
    nested = [r for r in routes if len(r.int_kwargs) > 1]
    failures = object_url_failures(client, nested, world.ids, world.needles, own_ids=(INITECH_PK,))
    assert not failures, "tenant isolation broken:\n" + "\n".join(failures)


# --- the checks can fail ----------------------------------------------------------------
# A console that forgot to scope two views, used (via pytest.mark.urls) to prove that the
# checks above notice a leak and name the URL.


def _unscoped_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(get_object_or_404(SmtpUser, pk=pk).name)


def _scoped_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(get_object_or_404(SmtpUser, pk=pk, account=request.account).name)  # type: ignore[attr-defined]


def _half_scoped_nested(request: HttpRequest, pk: int, entry_pk: int) -> HttpResponse:
    get_object_or_404(SmtpUser, pk=pk, account=request.account)  # type: ignore[attr-defined]
    return HttpResponse(get_object_or_404(AuthorizedDomain, pk=entry_pk).domain)


def _unscoped_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse(", ".join(SmtpUser.objects.values_list("username", flat=True)))


urlpatterns = [
    path("users/<int:pk>/", _unscoped_detail, name="leaky_detail"),
    path("safe/<int:pk>/", _scoped_detail, name="safe_detail"),
    path("users/<int:pk>/domains/<int:entry_pk>/", _half_scoped_nested, name="leaky_nested"),
    path("users/", _unscoped_list, name="leaky_list"),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    # The console's 404 page links to pages this test's URLconf does not have.
    return HttpResponse("not found", status=404)


@pytest.mark.urls(__name__)
def test_the_checks_name_a_view_that_leaks(client, world):
    client.force_login(world.dave)
    routes, _ = console_routes(settings.ROOT_URLCONF)
    assert {r.name for r in routes} == {"leaky_detail", "safe_detail", "leaky_nested", "leaky_list"}
    failures = object_url_failures(client, routes, world.ids, world.needles)
    assert f"GET /users/{GLOBEX_PK}/ (leaky_detail) answered 200" in failures
    assert not [f for f in failures if "safe_detail" in f or "leaky_nested" in f]
    populate(world.initech, world.dave, INITECH_PK, "initech", "198.51.100.7")
    mixed = object_url_failures(client, routes, world.ids, world.needles, own_ids=(INITECH_PK,))
    assert f"GET /users/{INITECH_PK}/domains/{GLOBEX_PK}/ (leaky_nested) answered 200" in mixed
    listed = list_page_failures(client, routes, world.ids, world.needles)
    assert listed and listed[0].startswith("GET /users/? (leaky_list) shows")
