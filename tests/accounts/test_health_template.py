"""The domain page's SPF/DMARC health include renders findings, fixes and verdicts."""

from __future__ import annotations

from django.template.loader import render_to_string

from accounts.domains.findings import Finding
from accounts.domains.health import Requirement, Verdict

TEMPLATE = "accounts/domains/_health.html"


def render(**context):
    return render_to_string(TEMPLATE, context)


def test_each_finding_shows_its_severity_explanation_and_record_to_copy():
    html = render(findings=[
        Finding("spf", "error", "acme.test has no SPF record", "Receivers cannot tell.",
                'acme.test. IN TXT "v=spf1 ip4:203.0.113.7 ~all"', "acme.test", "TXT", "spf.none"),
        Finding("dmarc", "unknown", "Could not check the DMARC record of acme.test",
                code="dmarc.unknown"),
        Finding("verification", "ok", "acme.test is verified"),
    ], verdicts=[])
    assert 'data-code="spf.none"' in html and 'data-severity="error"' in html
    assert '<span class="badge bad">error</span>' in html
    assert '<span class="badge nodata">could not check</span>' in html
    assert "TXT record at <code>acme.test</code>" in html
    assert ('<pre id="health-fix-1">acme.test. IN TXT &quot;v=spf1 ip4:203.0.113.7 ~all&quot;</pre>'
            in html)
    assert 'data-copy="#health-fix-1"' in html
    assert "acme.test is verified" not in html  # another check's finding: not here


def test_record_text_from_dns_is_escaped():
    html = render(findings=[Finding("spf", "error", "bad <b>", "\"<script>alert(1)</script>\"",
                                    code="spf.syntax")], verdicts=[])
    assert "<script>" not in html and "&lt;script&gt;" in html and "bad &lt;b&gt;" in html


def test_verdicts_show_each_requirement():
    verdict = Verdict("Yahoo", "bulk senders, since February 2024", "fail", (
        Requirement("SPF passes", "pass", "The SPF record of acme.test authorizes this relay"),
        Requirement("DKIM passes", "fail", "the domain has no active DKIM key"),
    ))
    html = render(findings=[], verdicts=[verdict], health_id="h2")
    assert 'id="h2-verdicts"' in html and 'data-result="fail"' in html
    assert '<span class="badge bad">Would fail</span>' in html
    assert "✗ DKIM passes</span>: the domain has no active DKIM key" in html
    assert "✓ SPF passes</span>" in html
    assert "Not checked yet" in html


def test_with_only_the_domain_it_shows_the_last_check_and_the_verdicts(cast):
    from django.utils import timezone

    from accounts.models import SendingDomain

    domain = SendingDomain.objects.create(
        account=cast.acme, domain="tpl.test", token="t" * 32, status="verified",
        verified_how="dns", verified_at=timezone.now(), check_result={"findings": [
            Finding("verification", "ok", "tpl.test is verified").to_dict(),
            Finding("dmarc", "ok", "The DMARC policy of tpl.test is p=reject",
                    code="dmarc.p_reject").to_dict(),
            Finding("spf", "error", "tpl.test has no SPF record", code="spf.none").to_dict(),
        ]})
    html = render(domain=domain)
    # Worst first, and only SPF and DMARC.
    assert html.index("tpl.test has no SPF record") < html.index("p=reject")
    assert "tpl.test is verified" not in html
    assert html.count("<tr data-result=") == 5
    assert 'data-result="fail"' in html  # no SPF, no DKIM key
