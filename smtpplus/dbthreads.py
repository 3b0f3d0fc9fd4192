"""The relay's and the delivery workers' database jobs: a thread's connection between jobs."""

from __future__ import annotations

import time

from django.db import connections


def prepare_db_connection() -> None:
    """Before each job: drop a broken or expired connection, keep a healthy one.

    Like close_old_connections(), minus two costs on a per-message path: no health
    check query per job (a connection is only checked after an error), and CONN_MAX_AGE=0
    (the SQLite default) keeps the connection instead of reconnecting for every job.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
                continue
        max_age = conn.settings_dict.get("CONN_MAX_AGE", 0)
        if max_age and conn.close_at is not None and time.monotonic() >= conn.close_at:
            conn.close()
        else:
            # Django re-checks health once per "request"; our jobs are not requests.
            conn.health_check_done = True  # type: ignore[attr-defined]
