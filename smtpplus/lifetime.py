"""Child processes that end with their parent, however the parent ends (SIGKILL too).

`up` and `runrelay` start every child through `start_child()` (or, for forked relay
processes, call `die_with_parent()` right after `fork()`). On Linux the kernel sends the
child SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, set between fork and exec, so
it covers any program — gunicorn too), and the child stops as on any SIGTERM. Elsewhere
our own commands, which call `watch_parent()` at start, poll their parent's pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

PARENT_ENV = "SMTPPLUS_PARENT_PID"
_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved once, in the parent: between fork and exec only the call itself runs.
_prctl = _load_prctl()


def _ask_kernel(sig: signal.Signals) -> bool:
    return _prctl is not None and _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """In a child: receive `sig` when the process `parent_pid` ends.

    Call it right after fork(). A parent that died before the request took effect is
    caught too: the child is then already someone else's.
    """
    if not _ask_kernel(sig):
        _start_watcher(parent_pid, sig)
    elif os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def watch_parent() -> None:
    """At the start of a command that `start_child()` started: make sure it ends with
    its parent even where the kernel cannot be asked to (the parent's pid is in the
    environment)."""
    value = os.environ.get(PARENT_ENV, "")
    if value.isdigit():
        die_with_parent(int(value))


def _start_watcher(parent_pid: int, sig: signal.Signals) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _preexec(parent_pid: int) -> None:
    # Between fork and exec: no threads, no imports, nothing but the system calls.
    if _ask_kernel(signal.SIGTERM) and os.getppid() != parent_pid:
        os._exit(1)


def start_child(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(args, **kwargs)` for a child that must end with this process."""
    parent = os.getpid()
    env = dict(kwargs.pop("env", None) or os.environ)
    env[PARENT_ENV] = str(parent)
    preexec = (lambda: _preexec(parent)) if _prctl is not None else None
    return subprocess.Popen(list(args), env=env, preexec_fn=preexec, **kwargs)  # noqa: PLW1509
