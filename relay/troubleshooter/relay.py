"""Troubleshooter checks about the relay itself: is it running, where does it listen, and
has this user's client reached it at all (the seed's "port not open" and "port not
supported" rows). See `relay.troubleshooter.base` for the contract of a check.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Sum

from accounts.models import SmtpUser
from relay.listen import Listener, compact_ports, ports_by_tls
from relay.models import ConnectionStat, RelayEvent, RelayNode
from relay.troubleshooter.base import NODATA, OK, PROBLEM, WINDOW, CheckResult, Facts, Fix, when


# --- 0. relay running ------------------------------------------------------------------
def check_relay_running(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    nodes = (facts or Facts(user, now)).nodes[:20]
    if nodes:
        return CheckResult("relay", OK, "The relay is running", [
            f"{n.hostname} ({n.node_id}): last heartbeat {when(n.heartbeat)}, "
            f"listening on {compact_ports([int(x['port']) for x in n.listeners]) or 'no port'}"
            for n in nodes
        ])
    last = RelayNode.objects.order_by("-heartbeat").first()
    evidence = ["No relay process has sent a heartbeat in the last minute."]
    if last is not None:
        evidence.append(f"Last heartbeat: {when(last.heartbeat)} from {last.node_id}"
                        + (f", stopped at {when(last.stopped)}" if last.stopped else ""))
    else:
        evidence.append("No relay process has ever started with this database.")
    return CheckResult("relay", PROBLEM, "The relay is not running", evidence, Fix(
        "Start the relay (manage.py runrelay) and check its log: until it runs, clients "
        "cannot connect and no message is accepted."))


# --- 4./5. ports -----------------------------------------------------------------------
def listeners_text(listeners: list[Listener]) -> str:
    return "; ".join(f"{ports} ({label})" for label, ports in ports_by_tls(listeners))


def suggest_port(listeners: list[Listener]) -> int | None:
    ports = sorted({x.port for x in listeners})
    for preferred in (2525, 587):
        if preferred in ports:
            return preferred
    return next((p for p in ports if p != 25), ports[0] if ports else None)


def _listening_fact(listeners: list[Listener], reported: bool) -> str:
    source = "as reported by the running relay" if reported else (
        "as configured; no relay is reporting its ports right now")
    return f"The relay listens on {listeners_text(listeners) or 'no port'}, {source}."


def last_contact(user: SmtpUser) -> tuple[datetime | None, int | None]:
    """When this user's client last reached the relay (any login, failed or not), and
    on which port."""
    stat = (ConnectionStat.objects.filter(smtp_user=user).order_by("-last_seen")
            .values("last_seen", "port").first())
    event = (RelayEvent.objects.filter(smtp_user=user).order_by("-last_seen")
             .values("last_seen", "port").first())
    candidates = [(c["last_seen"], c["port"]) for c in (stat, event) if c]
    if user.last_login_at:
        candidates.append((user.last_login_at, None))
    if not candidates:
        return None, None
    return max(candidates, key=lambda c: c[0])


def check_port_open(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    listeners, reported = (facts or Facts(user, now)).listeners
    since = max(now - WINDOW, user.created)
    seen, port = last_contact(user)
    evidence = [_listening_fact(listeners, reported)]
    if seen is not None and seen >= since:
        evidence.insert(0, f"Last connection from this user's client: {when(seen)}"
                        + (f" on port {port}" if port else ""))
        return CheckResult("port_open", OK, "The client reaches the relay", evidence)
    evidence.insert(0, f"No connection seen from this user since {when(since)}"
                    + (f" (the last one was at {when(seen)})" if seen else " (none ever)") + ".")
    suggestion = suggest_port(listeners)
    others = [p for p in sorted({x.port for x in listeners}) if p != suggestion]
    text = ("The client may not reach the relay: the port it uses may be closed on the "
            "network of the server it runs on (port 25 often is). ")
    if suggestion:
        text += f"Try port {suggestion}"
        if others:
            text += f" or another port the relay listens on ({compact_ports(others)})"
        text += ". "
    text += ("If nothing works, ask that server's administrator which outbound ports are open. "
             "Note that in this case no alert can be sent: the message never reached the relay, "
             "so the relay does not know about it.")
    return CheckResult("port_open", PROBLEM, "No connection seen from this user", evidence,
                       Fix(text))


def check_port_supported(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    listeners, reported = (facts or Facts(user, now)).listeners
    listening = {x.port for x in listeners}
    since = now - WINDOW
    hour = since.replace(minute=0, second=0, microsecond=0)
    per_port: dict[int, dict[str, int]] = {}
    for row in (ConnectionStat.objects.filter(smtp_user=user, hour__gte=hour)
                .values("port").annotate(n=Sum("logins")).order_by("port")[:100]):
        per_port.setdefault(row["port"], {"logins": 0, "failed": 0})["logins"] += row["n"] or 0
    for row in (RelayEvent.objects.filter(smtp_user=user, last_seen__gte=since,
                                          port__isnull=False)
                .values("port").annotate(n=Sum("count")).order_by("port")[:100]):
        per_port.setdefault(row["port"], {"logins": 0, "failed": 0})["failed"] += row["n"] or 0
    evidence = [f"Supported ports: {listeners_text(listeners) or 'none'}"
                + ("" if reported else " (as configured; no relay is reporting)") + "."]
    for p, c in sorted(per_port.items()):
        state = "supported" if p in listening else "NOT listened on any more"
        evidence.append(f"Port {p} ({state}): {c['logins']} login{'s' if c['logins'] != 1 else ''}"
                        f", {c['failed']} refused command{'s' if c['failed'] != 1 else ''}")
    fix = Fix("Configure the client with one of the supported ports"
              + (f", for example {suggest_port(listeners)}." if listeners else "."))
    if not per_port:
        evidence.append("No connection from this user's client in the last 24 h.")
        return CheckResult("port_supported", NODATA, "Ports: no connection to check", evidence,
                           fix)
    if any(p not in listening for p in per_port):
        return CheckResult("port_supported", PROBLEM, "The client uses a port the relay no "
                           "longer listens on", evidence, fix)
    return CheckResult("port_supported", OK, "The client uses a supported port", evidence)


