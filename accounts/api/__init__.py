"""The accounts app's part of /api/v1/: the routers for SMTP+ users, senders, the audit
log (`routers`) and sending domains (`domains`); what every endpoint shares, the API key
check and the JSON error shape (`auth`); the keys' secrets and stored digests (`keys`);
the per-key rate limit counted in the database (`ratelimit`).
"""
