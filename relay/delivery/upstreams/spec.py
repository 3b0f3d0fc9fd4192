"""`RELAY_UPSTREAM` parsing: which upstream delivered mail goes to, and how.

    smtp://[user:pass@]host:port[?tls=require][&verify=no]   smarthost, STARTTLS if offered
    smtps://[user:pass@]host:port[?verify=no]                smarthost, implicit TLS
    mx[?verify=yes]                                           the recipient domain's MX hosts
    maildir:PATH                                              local Maildir (development)

A bad value raises `UpstreamConfigError` whose message says what is expected, so
`deliver --check` and start-up can tell the operator before any mail is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


class UpstreamConfigError(ValueError):
    """RELAY_UPSTREAM is not a value we understand; the message says what is expected."""


EXPECTED = (
    "expected smtp://[user:pass@]host:port[?tls=require], smtps://[user:pass@]host:port, "
    "mx or maildir:PATH"
)


@dataclass(frozen=True)
class UpstreamSpec:
    kind: str  # "smtp", "smtps", "mx" or "maildir"
    host: str = ""
    port: int = 0
    username: str = ""
    password: str = ""
    require_tls: bool = False
    verify: bool = True
    path: str = ""
    # Test and unusual setups only: where `mx` connects and which nameserver it asks.
    mx_port: int = 25
    nameserver: str = ""

    @property
    def label(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        if self.kind == "mx":
            return "mx"
        return f"{self.host}:{self.port}"


def _flag(params: dict[str, list[str]], name: str, default: bool) -> bool:
    values = params.get(name)
    if not values:
        return default
    value = values[-1].lower()
    if value in ("1", "yes", "true", "on", "require", "required"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise UpstreamConfigError(f"RELAY_UPSTREAM: {name}={values[-1]!r} is not yes/no")


def parse_upstream(url: str) -> UpstreamSpec:
    url = url.strip()
    if url.startswith("maildir:"):
        path = url[len("maildir:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: maildir needs a path; {EXPECTED}")
        return UpstreamSpec("maildir", path=str(Path(path).expanduser()))
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    known = {"tls", "verify", "port", "nameserver"}
    unknown = set(params) - known
    if unknown:
        raise UpstreamConfigError(
            f"RELAY_UPSTREAM {url!r}: unknown option(s) {', '.join(sorted(unknown))}"
        )
    if url == "mx" or url.startswith("mx?") or parts.scheme == "mx":
        port = params.get("port", ["25"])[-1]
        if not port.isdigit():
            raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: port must be a number")
        return UpstreamSpec(
            "mx",
            verify=_flag(params, "verify", False),
            mx_port=int(port),
            nameserver=params.get("nameserver", [""])[-1],
        )
    if parts.scheme not in ("smtp", "smtps"):
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: {EXPECTED}")
    try:
        port_number = parts.port
    except ValueError as exc:
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: bad port ({exc})") from None
    if not parts.hostname:
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: no host; {EXPECTED}")
    implicit = parts.scheme == "smtps"
    return UpstreamSpec(
        parts.scheme,
        host=parts.hostname,
        port=port_number or (465 if implicit else 25),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        require_tls=implicit or _flag(params, "tls", False),
        verify=_flag(params, "verify", True),
    )
