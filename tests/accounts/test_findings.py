from accounts.domains.findings import Finding, ordered, worst


def test_the_worst_finding_decides_the_verdict_and_comes_first():
    ok = Finding("spf", "ok", "SPF authorizes this relay")
    unknown = Finding("dmarc", "unknown", "Could not look up _dmarc.acme.example")
    error = Finding("dkim", "error", "DKIM key not published", fix='"v=DKIM1; k=rsa; p=…"')
    assert worst([]) == "ok"
    assert worst([ok, unknown]) == "unknown"
    assert worst([ok, unknown, error]) == "error"
    assert ordered([ok, unknown, error]) == [error, unknown, ok]


def test_a_finding_survives_its_json_form():
    finding = Finding("spf", "warning", "Too many lookups", "11 of 10", "v=spf1 …", "acme.example", "TXT")
    assert Finding.from_dict(finding.to_dict()) == finding
