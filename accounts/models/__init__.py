"""The accounts app's models, one module per part: accounts, their members and SMTP+
users (`accounts`), sending domains and DKIM keys (`domains`), the HTTP API's keys and
counters (`api`). Import them from here."""

from accounts.models.accounts import (
    Account,
    AuditEvent,
    AuthorizedDomain,
    AuthorizedEmail,
    Invitation,
    LoginFailureCount,
    Membership,
    Role,
    SmtpUser,
)
from accounts.models.api import ApiKey, ApiKeyRole, ApiRateCount, IdempotentRequest
from accounts.models.domains import (
    DkimAlgorithm,
    DkimKey,
    DkimKeyState,
    DomainEvent,
    DomainEventKind,
    DomainStatus,
    SendingDomain,
    VerifiedHow,
)

__all__ = [
    "Account",
    "ApiKey",
    "ApiKeyRole",
    "ApiRateCount",
    "AuditEvent",
    "AuthorizedDomain",
    "AuthorizedEmail",
    "DkimAlgorithm",
    "DkimKey",
    "DkimKeyState",
    "DomainEvent",
    "DomainEventKind",
    "DomainStatus",
    "IdempotentRequest",
    "Invitation",
    "LoginFailureCount",
    "Membership",
    "Role",
    "SendingDomain",
    "SmtpUser",
    "VerifiedHow",
]
