"""Sending domains: the proof that an account owns one (`ownership`, which also holds the
registry of checks), its DKIM keys (`dkim`), its SPF record (`spfrecord`), the SPF and
DMARC findings (`spfhealth`, `dmarchealth`), the mailbox providers' verdicts (`health`)
and the shape of a finding (`findings`).

These modules judge and never write; the audited state changes are
`accounts.actions.domains` and `accounts.actions.dkim_keys`. They import neither the
console's pages nor the API.
"""
