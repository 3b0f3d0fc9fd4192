"""`{% dkim_publish_rows domain as rows %}`: the DKIM records of a sending domain, for
templates/accounts/domains/_dkim_records.html, so that any page showing a domain can
include that section without building its context."""

from __future__ import annotations

from django import template

from accounts.actions.dkim_keys import PublishRow, publish_rows
from accounts.models import SendingDomain

register = template.Library()


@register.simple_tag
def dkim_publish_rows(domain: SendingDomain) -> list[PublishRow]:
    return publish_rows(domain)
