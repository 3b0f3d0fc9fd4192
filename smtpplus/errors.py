"""The page the console answers when its database cannot be reached.

Django turns an exception into a response inside each middleware layer, so an error
raised while the session or the current account is read (before any view runs) never
reaches an outer middleware: the 500 handler is the one place that sees them all. It
renders a template that needs no database, no session and no user (no request context),
so the page itself cannot fail the same way.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views import defaults

DATABASE_DOWN_TEMPLATE = "database_unavailable.html"
# Seconds a client is asked to wait before trying again.
RETRY_AFTER = 30


def database_unreachable(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it was raised from) says the database cannot be used."""
    while exc is not None:
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a styled 503 when the database is unreachable, Django's 500 otherwise."""
    if not database_unreachable(sys.exc_info()[1]):
        return defaults.server_error(request)
    body = loader.get_template(DATABASE_DOWN_TEMPLATE).render()
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response
