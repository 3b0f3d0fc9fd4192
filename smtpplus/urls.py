from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from accounts import login
from accounts.api import routers as accounts_api
from accounts.api.auth import ApiError, ApiKeyAuth
from alerts import api as alerts_api
from relay import api as relay_api
from relay.console import dashboard, metrics, subjects
from smtpplus import views

# The management API: one instance, each app's endpoints in its own module. Its own
# docs page (`views.api_docs`) replaces ninja's, which loads Swagger UI from a CDN.
api = NinjaAPI(
    title="SMTP+ API", version="1", auth=ApiKeyAuth(), urls_namespace="api",
    openapi_url="/openapi.json", docs_url=None,
    description="Send messages with the relay's rules, and manage SMTP+ users, their "
    "authorized senders, sending domains, messages, relay events, alert rules and the audit "
    "log of one account. Authenticate with an API key: `Authorization: Bearer smtpk_…` "
    "(sending also takes an SMTP+ user's own credentials, HTTP Basic). Errors are "
    "`{\"code\", \"message\"}`.",
)
api.add_router("/", accounts_api.router)
api.add_router("/", relay_api.router)
api.add_router("/", alerts_api.router)
api.add_router("/", accounts_api.audit_router)
api.add_router("/", accounts_api.domains_router)


def _error(request: HttpRequest, status: int, code: str, message: str,
           headers: dict[str, str] | None = None, **extra: str) -> HttpResponse:
    response = api.create_response(
        request, {"code": code, "message": message, **extra}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return _error(request, exc.status, exc.code, exc.message, exc.headers, **exc.extra)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja's own refusals, e.g. a body that is not JSON (400), in the API's error shape.
    code = "unparsable" if exc.status_code == 400 else "refused"
    return _error(request, exc.status_code, code, exc.message)


@api.exception_handler(OverflowError)
def _out_of_range(request: HttpRequest, exc: OverflowError) -> HttpResponse:
    # An id or a number beyond what the database stores (SQLite raises when asked).
    return _error(request, 422, "invalid", "A number in the request is out of range.")


@api.exception_handler(DatabaseError)
def _database_down(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    # Nothing was accepted or changed that the caller was told about: try again later.
    return _error(request, 503, "database_unavailable",
                  "SMTP+ cannot reach its database: nothing was done, try again later.",
                  {"Retry-After": "30"})


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "request_too_large",
                  "The request body is larger than API_MAX_REQUEST_SIZE.")


@api.exception_handler(AuthenticationError)
def _no_key(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "missing_key", "Send an API key: Authorization: Bearer <key>.")


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors]
    return _error(request, 422, "invalid", "; ".join(parts) or "The request is not valid.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "Not found.")


urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("no-account/", views.no_account, name="no_account"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True),
         name="favicon"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("subject-tool/", subjects.subject_tool, name="subject_tool"),
    path("api/v1/docs", views.api_docs, name="api_docs"),
    path("api/v1/", api.urls),
    path("", include("accounts.urls")),
    path("", include("relay.urls")),
    path("alerts/", include("alerts.urls")),
    path("admin/", admin.site.urls),
]

handler500 = "smtpplus.errors.server_error"
