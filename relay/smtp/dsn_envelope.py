"""The DSN extension (RFC 3461) on the relay's side: its parameters are taken out of MAIL
FROM and RCPT TO before aiosmtpd reads the rest (aiosmtpd knows no DSN, would answer
555, and upper-cases what it reads), and kept on the transaction's envelope until the
message is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from aiosmtpd.smtp import Envelope

from relay import dsn_params

if TYPE_CHECKING:
    from relay.smtp.protocol import RelaySMTP


class RelayEnvelope(Envelope):
    """aiosmtpd's envelope plus the DSN parameters of its MAIL FROM and each RCPT TO."""

    def __init__(self) -> None:
        super().__init__()
        self.dsn_ret = ""
        self.dsn_envid = ""
        # (NOTIFY, ORCPT) of each accepted RCPT TO, in the order of rcpt_tos.
        self.rcpt_dsn: list[tuple[str, str]] = []


Taker = Callable[[str], tuple[str, str, str]]


async def take(
    server: RelaySMTP, arg: str | None, keyword: str, taker: Taker
) -> tuple[str | None, str, str] | None:
    """`arg` without its DSN parameters, and their two values; None once a bad one has
    been refused (the reply is sent)."""
    if not arg or arg[: len(keyword)].upper() != keyword or server.session is None:
        return arg, "", ""
    if not server.session.extended_smtp:
        return arg, "", ""
    path = arg[len(keyword):].strip()
    if "=" not in path:
        return arg, "", ""
    address, params = server._getaddr(path)
    if address is None or not params:
        return arg, "", ""
    try:
        kept, first, second = taker(params)
    except dsn_params.DsnParamError as exc:
        await server.push(str(exc))
        return None
    return f"{keyword}{path[: len(path) - len(params)]} {kept}".rstrip(), first, second


class SubmissionDsn(TypedDict, total=False):
    """The DSN fields of a `relay.smtp.accept.Submission`."""

    dsn_ret: str
    dsn_envid: str
    rcpt_dsn: list[tuple[str, str]]


def fields(envelope: Envelope) -> SubmissionDsn:
    """The DSN fields of a `relay.smtp.accept.Submission` for this envelope."""
    if not isinstance(envelope, RelayEnvelope):
        return {}
    return {"dsn_ret": envelope.dsn_ret, "dsn_envid": envelope.dsn_envid,
            "rcpt_dsn": list(envelope.rcpt_dsn)}
