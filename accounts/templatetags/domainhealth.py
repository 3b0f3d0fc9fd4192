"""`{% domain_health domain findings verdicts as health %}`: the SPF/DMARC findings and the
provider verdicts of a sending domain, for templates/accounts/domains/_health.html, so
that any page showing a domain can include that section without building its context
(`findings` and `verdicts`, when a page passes them, are used as given)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template

from accounts.domains.findings import Finding, ordered
from accounts.domains.health import HEALTH_CHECKS, Verdict, provider_verdicts, stored_findings
from accounts.models import SendingDomain

register = template.Library()


@dataclass(frozen=True)
class Health:
    findings: list[Finding]
    verdicts: list[Verdict]


@register.simple_tag
def domain_health(domain: Any = None, findings: Any = None, verdicts: Any = None) -> Health:
    # A variable the page does not define arrives as "" (string_if_invalid), not None.
    sending = domain if isinstance(domain, SendingDomain) else None
    if isinstance(findings, list):
        found = [f for f in findings if isinstance(f, Finding) and f.check in HEALTH_CHECKS]
    else:
        found = ordered(stored_findings(sending)) if sending else []
    if isinstance(verdicts, list):
        judged = verdicts
    else:
        judged = provider_verdicts(sending, found) if sending else []
    return Health(found, judged)
