"""The console's navigation: which links a member sees, and which one is the current page.

One list for every page (base.html draws it; the 500 page draws the same links without
the database). A page belongs to the section whose path prefix is the longest match of
its URL, so a user's troubleshooter (`/users/5/troubleshoot/`) marks "SMTP+ users" and a
message (`/messages/12/`) marks "Messages".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    # "main": always on the bar; "more": in the "More" menu (tools and account settings).
    group: str = "main"
    editors_only: bool = False


ITEMS = (
    NavItem("Dashboard", "dashboard"),
    NavItem("SMTP+ users", "accounts:smtpuser_list"),
    NavItem("Sending domains", "accounts:domain_list"),
    NavItem("Messages", "relay:messages"),
    NavItem("Relay events", "relay:events"),
    # In "More": with "Sending domains" on the bar, the bar must still fit one line.
    NavItem("Suppressions", "relay:suppressions", "more"),
    NavItem("Alert center", "alerts:rules"),
    NavItem("Members", "accounts:members", "more"),
    NavItem("Audit log", "accounts:audit", "more"),
    NavItem("API keys", "accounts:api_keys", "more", editors_only=True),
    NavItem("API docs", "api_docs", "more"),
    NavItem("Subject tool", "subject_tool", "more"),
)


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    group: str
    current: bool


def nav_links(path: str, can_edit: bool) -> list[NavLink]:
    """The links a member sees, the current page's marked (pages not yet installed in
    this build, whose URL does not resolve, are left out)."""
    found: list[tuple[NavItem, str]] = []
    for item in ITEMS:
        if item.editors_only and not can_edit:
            continue
        try:
            found.append((item, reverse(item.url_name)))
        except NoReverseMatch:
            continue
    best = ""
    for _, url in found:
        if (path == url or (url != "/" and path.startswith(url))) and len(url) > len(best):
            best = url
    return [NavLink(item.label, url, item.group, url == best) for item, url in found]


def navigation_context(request: HttpRequest) -> dict[str, Any]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    can_edit = bool(membership and membership.can_edit)
    links = nav_links(request.path, can_edit)
    more = [link for link in links if link.group == "more"]
    return {
        "nav_main": [link for link in links if link.group == "main"],
        "nav_more": more,
        "nav_more_current": any(link.current for link in more),
    }
