"""What a check of a sending domain's DNS found, in the words the console shows.

Every check of a domain — ownership (TXT token), DKIM, SPF, DMARC — gives `Finding`s:
a severity, a one-line title, a plain-language explanation and, when something must
change, the exact fix (the record to publish, or the change to make to the existing
one). They are stored as JSON on the domain (`SendingDomain.check_result`) so that the
console, the CLI, the troubleshooter and alerts show the last check without asking DNS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["ok", "info", "warning", "error", "unknown"]
# Worst first: the order the console lists findings in and the overall verdict takes.
SEVERITY_ORDER: tuple[Severity, ...] = ("error", "unknown", "warning", "info", "ok")


@dataclass(frozen=True)
class Finding:
    check: str  # "verification", "dkim", "spf", "dmarc"
    severity: Severity  # "unknown": the check could not run (DNS did not answer)
    title: str
    explanation: str = ""
    # The record to publish or the change to make ("" when nothing needs to change).
    fix: str = ""
    # The DNS name the fix goes to, and its type, when the fix is a record.
    record_name: str = ""
    record_type: str = ""
    # What kind of finding it is, for code that reads stored findings (the provider
    # verdicts, the troubleshooter): e.g. "spf.none", "dmarc.p_reject"; "" when unused.
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        fields = {f: data.get(f, "") for f in cls.__dataclass_fields__}
        return cls(**fields)


def worst(findings: list[Finding]) -> Severity:
    """The overall severity of a list of findings ("ok" when empty)."""
    for severity in SEVERITY_ORDER:
        if any(f.severity == severity for f in findings):
            return severity
    return "ok"


def ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: SEVERITY_ORDER.index(f.severity))
