"""Logging a client in: the SMTP+ user, its authorized senders, one database query.

A client that opens a connection per message logs in once per message, so the login is
on the per-message path. `log_in()` reads the user row, its account and all of its
authorized domains and emails (each with its confirmed flag) and the account's verified
sending domains in ONE query (aggregated as JSON by the database) and decides with `accounts.credentials.verify_login()`. Nothing is
cached across logins but a successful one's row, and only while the relay's once-a-second
version check confirms it (`relay.smtp.login_cache`): a password reset, a disabled user
or a sender change applies to new logins within that check's bound, whoever wrote it
and however. What a session caches at login (the sender
policy, the limits) is checked against the user's `version`, read in the same query, by
`relay.revocation` while the session stays open.

Synchronous: the relay's thread-pool store runs it on the relay's database threads; its
PostgreSQL store runs the same query on the event loop and decides with the same
`judge_login()` (`relay.smtp.store`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django.db.models.base import ModelState
from django.utils import timezone

from accounts.credentials import LoginResult, verify_login
from accounts.models import (
    Account,
    AuthorizedDomain,
    AuthorizedEmail,
    DomainStatus,
    SendingDomain,
    SmtpUser,
)
from accounts.senders import SenderPolicy
from relay.smtp.limits import messages_last_hour

M = TypeVar("M", bound=Model)

# Log-in time and IP are written at most this often per user and relay: a client that
# opens a connection per message must not cost an UPDATE per message.
LAST_LOGIN_WRITE_SECONDS = 60.0

# The SmtpUser fields the relay needs, in the order of the query's first columns.
_USER_FIELDS = (
    "id", "username", "password_digest", "active", "account_id", "hourly_limit", "priority",
    "name", "version", "password_version",
)


@dataclass
class LoginOutcome:
    result: LoginResult
    policy: SenderPolicy | None = None
    # Messages in the last hour per the database, when the user has an hourly limit and
    # the caller asked for it.
    hourly_count: int | None = None
    # The log-in time and IP due, left for the caller to write (`log_in(defer=True)`).
    last_login: LastLogin | None = None


@dataclass(frozen=True)
class LastLogin:
    """A successful login's time and client IP, to write on its user's row."""

    user_id: int
    at: datetime
    client_ip: str | None


@functools.cache
def _login_sql(vendor: str) -> str:
    """SELECT user, account and JSON arrays of the user's domains and emails and of the
    account's verified sending domains."""
    columns, tables = login_select(vendor)
    user = SmtpUser._meta
    q = connection.ops.quote_name
    # Quoted names from the models only; the username is a parameter.
    where = f"u.{q(user.get_field('username').column)} = %s"
    return f"SELECT {columns} FROM {tables} WHERE {where}"  # noqa: S608


@functools.cache
def login_select(vendor: str) -> tuple[str, str]:
    """The login query's select list and its tables (the user `u` joined to its account
    `a`), for a query that finds the user another way: its row, read from the select
    list's columns in order, goes to `login_from_row()`."""
    user, account = SmtpUser._meta, Account._meta
    domain, email, sending = AuthorizedDomain._meta, AuthorizedEmail._meta, SendingDomain._meta
    q = connection.ops.quote_name

    def col(meta: Any, name: str) -> str:
        return q(meta.get_field(name).column)

    if vendor == "postgresql":
        agg_domains = f"json_agg(json_build_array(d.{col(domain, 'domain')}, " \
                      f"d.{col(domain, 'include_subdomains')}))::text"
        agg_emails = f"json_agg(json_build_array(e.{col(email, 'email')}, " \
                     f"e.{col(email, 'confirmed_at')} IS NOT NULL))::text"
        agg_owned = f"json_agg(json_build_array(s.{col(sending, 'domain')}, " \
                    f"s.{col(sending, 'include_subdomains')}))::text"
    else:  # SQLite (JSON1 is built in)
        agg_domains = f"json_group_array(json_array(d.{col(domain, 'domain')}, " \
                      f"d.{col(domain, 'include_subdomains')}))"
        agg_emails = f"json_group_array(json_array(e.{col(email, 'email')}, " \
                     f"e.{col(email, 'confirmed_at')} IS NOT NULL))"
        agg_owned = f"json_group_array(json_array(s.{col(sending, 'domain')}, " \
                    f"s.{col(sending, 'include_subdomains')}))"
    user_cols = ", ".join(f"u.{col(user, name)}" for name in _USER_FIELDS)
    # Only quoted table and column names from the models go into the text; the username
    # is a parameter.
    columns = (
        f"{user_cols}, a.{col(account, 'slug')}, a.{col(account, 'name')}, "  # noqa: S608
        f"(SELECT {agg_domains} FROM {q(domain.db_table)} d "
        f"WHERE d.{col(domain, 'smtp_user')} = u.{col(user, 'id')}), "
        f"(SELECT {agg_emails} FROM {q(email.db_table)} e "
        f"WHERE e.{col(email, 'smtp_user')} = u.{col(user, 'id')}), "
        f"(SELECT {agg_owned} FROM {q(sending.db_table)} s "
        f"WHERE s.{col(sending, 'account')} = u.{col(user, 'account')} "
        f"AND s.{col(sending, 'status')} = '{DomainStatus.VERIFIED.value}')"
    )
    tables = (f"{q(user.db_table)} u "
              f"JOIN {q(account.db_table)} a ON a.{col(account, 'id')} = u.{col(user, 'account')}")
    return columns, tables


def _json_list(value: Any) -> list[Any]:
    if value is None:
        return []
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    # SQLite's json_group_array gives [null] when the subquery has no rows.
    return [v for v in parsed if v is not None]


def login_query(username: str, vendor: str | None = None) -> tuple[str, list[Any]]:
    """The one login query and its parameters, for any connection to a database of
    `vendor` (default: the default database's). Naming the vendor spares the event loop
    `django.db.connection`, which builds a database wrapper for every new task (every
    SMTP connection) that touches it."""
    return _login_sql(vendor or connection.vendor), [username.strip().lower()]


def login_from_row(row: Sequence[Any] | None) -> tuple[SmtpUser | None, SenderPolicy | None]:
    """The user (with its account) and sender policy from a row of `login_query()`."""
    if row is None:
        return None, None
    n = len(_USER_FIELDS)
    values = dict(zip(_USER_FIELDS, row[:n], strict=True))
    values["active"] = bool(values["active"])  # SQLite gives 0/1
    user = _loaded(SmtpUser, values)
    account = _loaded(Account, {"id": values["account_id"], "slug": row[n], "name": row[n + 1]})
    user._state.fields_cache["account"] = account  # as select_related() leaves it
    domains = [(d, bool(include)) for d, include in _json_list(row[n + 2])]
    emails = [(e, bool(confirmed)) for e, confirmed in _json_list(row[n + 3])]
    owned = [(d, bool(include)) for d, include in _json_list(row[n + 4])]
    policy = SenderPolicy.from_entries(user.username, domains, emails, owned=owned)
    return user, policy


def _loaded(model: type[M], values: dict[str, Any]) -> M:
    """An instance of `model` as the database gave it, with only `values` loaded (the
    other fields deferred, as `.only()` leaves them). Built without `Model.__init__`,
    whose signals and per-field defaults were a fifth of a login's CPU time."""
    obj = model.__new__(model)
    obj.__dict__.update(values)
    state = obj._state = ModelState()
    state.adding, state.db = False, DEFAULT_DB_ALIAS
    return obj


def login_row(username: str) -> tuple[Any, ...] | None:
    """The login query's row for `username` (None: no such user). Synchronous."""
    sql, params = login_query(username)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else tuple(row)


def load_login(username: str) -> tuple[SmtpUser | None, SenderPolicy | None]:
    """The SMTP+ user called `username` (with its account) and its sender policy."""
    return login_from_row(login_row(username))


def log_in(
    username: str,
    password: str,
    client_ip: str | None,
    load_hourly: Callable[[int], bool] | bool = True,
    logins_written: dict[int, float] | None = None,
    defer: bool = False,
) -> LoginOutcome:
    """Check credentials; on success give the sender policy (and the hourly count).

    `load_hourly` says (or decides per user id) whether to count the user's messages of
    the last hour; `logins_written` (user id → monotonic time) throttles the last-login
    update; without it every successful login writes. With `defer` the log-in time and
    IP are not written but given back (`LoginOutcome.last_login`): the relay writes them
    with its next limit sync.
    """
    sql, params = login_query(username)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    outcome, todo = judge_login(row, password, client_ip, load_hourly, logins_written)
    if todo is not None and defer:
        todo = defer_login(outcome, todo)
    if todo is not None:
        outcome.hourly_count = write_login(todo)
    return outcome


def defer_login(outcome: LoginOutcome, todo: LoginWrite) -> LoginWrite | None:
    """Move the log-in write of `todo` to `outcome.last_login`; what is left to do."""
    if todo.write:
        outcome.last_login = LastLogin(todo.user_id, timezone.now(), todo.client_ip)
    return replace(todo, write=False) if todo.count else None


def write_last_logins(logins: Iterable[LastLogin]) -> None:
    """Write deferred log-in times and IPs. Synchronous."""
    for login in logins:
        # .update(): no `changed` bump, no signals — a login is not an edit.
        SmtpUser.objects.filter(pk=login.user_id).update(
            last_login_at=login.at, last_login_ip=login.client_ip)


@dataclass(frozen=True)
class LoginWrite:
    """What a successful login still asks of the database: the last hour's count of
    the user's messages (`count`) and the log-in time and IP (`write`)."""

    user_id: int
    client_ip: str | None
    count: bool
    write: bool


def judge_login(
    row: Sequence[Any] | None,
    password: str,
    client_ip: str | None,
    load_hourly: Callable[[int], bool] | bool,
    written: dict[int, float] | None,
) -> tuple[LoginOutcome, LoginWrite | None]:
    """The login decided from its one row of `login_query()`: the outcome, and what is
    left to write (None: nothing). Every store reads the row and runs the write its own
    way; the decision is this one function."""
    user, policy = login_from_row(row)
    result = verify_login(user, password)
    if not result.ok or user is None or policy is None:
        return LoginOutcome(result), None
    count, write = login_followup(user, load_hourly, written)
    todo = LoginWrite(user.pk, client_ip, count, write) if count or write else None
    return LoginOutcome(result, policy), todo


def login_followup(
    user: SmtpUser,
    load_hourly: Callable[[int], bool] | bool,
    written: dict[int, float] | None,
) -> tuple[bool, bool]:
    """After a successful login: (count the last hour's messages?, write the login?).
    Marks the login as written in `written` when it says so."""
    wanted = load_hourly(user.pk) if callable(load_hourly) else load_hourly
    count = bool(user.hourly_limit and wanted)
    if written is None:
        return count, True
    now = time.monotonic()
    last = written.get(user.pk)
    if last is not None and now - last < LAST_LOGIN_WRITE_SECONDS:
        return count, False
    written[user.pk] = now
    return count, True


def write_login(todo: LoginWrite) -> int | None:
    """The database side of `judge_login()`: the hourly count (if asked for) and the
    log-in time and IP (if due)."""
    hourly = messages_last_hour(todo.user_id) if todo.count else None
    if todo.write:
        # .update(): no `changed` bump, no signals — a login is not an edit.
        SmtpUser.objects.filter(pk=todo.user_id).update(
            last_login_at=timezone.now(), last_login_ip=todo.client_ip)
    return hourly
