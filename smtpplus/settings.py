"""SMTP+ settings: everything comes from the environment (or an optional `.env` file).

Development defaults work with nothing set; `manage.py check --deploy` warns about each
unsafe default (see `smtpplus/checks.py`). Importing this module only reads: the folders
the defaults point to (var/, STATIC_ROOT) are made when Django starts (`smtpplus.apps`),
so a tool that merely imports the settings changes nothing on disk.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)



def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment. A value that is not a number is an error
    naming the variable: django-environ's own message names neither (it even reads "abc"
    as an empty string). Whether the number is in range is `smtpplus.checks`' job."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from None


DEV_SECRET_KEY = "dev-insecure-smtpplus-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "smtpplus",
    "accounts",
    "relay",
    "alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "smtpplus.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.tenancy.CurrentAccountMiddleware",
]

ROOT_URLCONF = "smtpplus.urls"
WSGI_APPLICATION = "smtpplus.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.tenancy.account_context",
                "smtpplus.console_url.console_url_context",
                "smtpplus.navigation.navigation_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Default: an SQLite file under var/, tuned so that the console, the relay and the
# delivery workers can share it (WAL, busy timeout, IMMEDIATE write transactions).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'smtpplus.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
    # A file (not memory) so that relay and worker processes started by tests share it;
    # one per test run so that concurrent runs do not collide.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Console password guessing (smtpplus.login, counted in the database): failed logins
# allowed per client network (IPv4 address, IPv6 /64), per network and username, and per
# username from all networks, within the window (seconds) before the login form refuses
# to check.
CONSOLE_LOGIN_FAILURES_PER_IP = env.int("CONSOLE_LOGIN_FAILURES_PER_IP", default=20)
CONSOLE_LOGIN_FAILURES_PER_USER = env.int("CONSOLE_LOGIN_FAILURES_PER_USER", default=5)
CONSOLE_LOGIN_FAILURES_PER_USERNAME = env.int("CONSOLE_LOGIN_FAILURES_PER_USERNAME", default=50)
CONSOLE_LOGIN_WINDOW = env.int("CONSOLE_LOGIN_WINDOW", default=900)
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_STORAGE", default="django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True

# --- Security -------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent on every response (smtpplus/csp.py). The console needs no inline script or style
# and nothing from another origin; an empty value sends no policy.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
)
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Credential encryption keys (Fernet, urlsafe base64, 32 bytes). Comma separated; the
# first one encrypts, all of them decrypt. Empty: a development key derived from
# SECRET_KEY (check --deploy warns).
SMTPPLUS_CREDENTIAL_KEYS = env.list("SMTPPLUS_CREDENTIAL_KEYS", default=[])
# How long a console password re-entry allows revealing credentials.
SMTPPLUS_REAUTH_SECONDS = env.int("SMTPPLUS_REAUTH_SECONDS", default=600)
SMTPPLUS_INVITE_DAYS = env.int("SMTPPLUS_INVITE_DAYS", default=7)
# Authorized domains and addresses together, per SMTP+ user: the user's page and every
# login read them all.
SMTPPLUS_MAX_SENDERS_PER_USER = env.int("SMTPPLUS_MAX_SENDERS_PER_USER", default=1000)
# Sending domains (accounts.domains.ownership): whether an SMTP+ user may send only as domains its
# account has proved it owns (DNS TXT record) and addresses confirmed by a link mailed to
# them ("required"), or as any authorized sender ("off": a closed single-tenant install;
# check --deploy warns).
SMTPPLUS_SENDER_VERIFICATION = env.str("SMTPPLUS_SENDER_VERIFICATION", default="required")
# A verified domain whose TXT record has been missing this long (seconds) becomes lapsed.
SMTPPLUS_DOMAIN_LAPSE_GRACE = env.int("SMTPPLUS_DOMAIN_LAPSE_GRACE", default=72 * 3600)
# How often the periodic check (manage.py domain check --due, run by `up`/`runrelay`)
# re-reads each domain's records, in seconds.
SMTPPLUS_DOMAIN_RECHECK_INTERVAL = env.int("SMTPPLUS_DOMAIN_RECHECK_INTERVAL", default=6 * 3600)
# Whether `runrelay` (and so `up`) starts that periodic check as a child process. Off: run
# `manage.py domain check --due` from cron instead, or not at all (a relay without DNS).
SMTPPLUS_DOMAIN_RECHECK = env.bool("SMTPPLUS_DOMAIN_RECHECK", default=True)
# How long an address confirmation link stays valid, in hours.
SMTPPLUS_ADDRESS_CONFIRM_HOURS = env.int("SMTPPLUS_ADDRESS_CONFIRM_HOURS", default=72)
# DNS servers for every lookup (verification, DKIM, SPF, DMARC, MX delivery):
# host[:port] or [v6]:port, comma separated; empty: the system's resolver.
SMTPPLUS_DNS_RESOLVERS = env.list("SMTPPLUS_DNS_RESOLVERS", default=[])
SMTPPLUS_DNS_TIMEOUT = env.float("SMTPPLUS_DNS_TIMEOUT", default=5.0)
# DKIM (accounts.domains.dkim): after a key rotation, how long the old key stays published and
# listed (seconds) before it is retired — long enough for mail signed with it to arrive.
SMTPPLUS_DKIM_ROTATION_GRACE = env.int("SMTPPLUS_DKIM_ROTATION_GRACE", default=7 * 24 * 3600)
# Also sign with an Ed25519 key (RFC 8463), beside the RSA-2048 signature.
SMTPPLUS_DKIM_ED25519 = env.bool("SMTPPLUS_DKIM_ED25519", default=False)
# How this relay's mail reaches the internet, for the SPF check of sending domains
# (accounts.domains.spfhealth): the public addresses or networks delivery connects from, and the
# smarthost's SPF include: domain when delivery goes through one. Either or both.
RELAY_EGRESS_IPS = env.list("RELAY_EGRESS_IPS", default=[])
RELAY_SPF_INCLUDE = env.str("RELAY_SPF_INCLUDE", default="")
# Public URL of the console, used for links in alert emails and invitations.
SMTPPLUS_CONSOLE_URL = env.str("SMTPPLUS_CONSOLE_URL", default="http://127.0.0.1:8000")

# --- Prometheus metrics (README "Monitoring") ----------------------------------------
# Where each long-running process serves its metrics (HOST:PORT; empty: not served).
METRICS_RELAY_LISTEN = env.str("METRICS_RELAY_LISTEN", default="")
METRICS_DELIVERY_LISTEN = env.str("METRICS_DELIVERY_LISTEN", default="")
METRICS_ALERTS_LISTEN = env.str("METRICS_ALERTS_LISTEN", default="")
# The console's /metrics (queue gauges): a bearer token and/or the client networks
# allowed to read it; with neither set it answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

# --- Relay ----------------------------------------------------------------------------
RELAY_HOSTNAME = env.str("RELAY_HOSTNAME", default="localhost")
RELAY_LISTEN = env.str("RELAY_LISTEN", default="127.0.0.1:2525")
RELAY_LISTEN_TLS = env.str("RELAY_LISTEN_TLS", default="")
RELAY_TLS_CERT = env.str("RELAY_TLS_CERT", default="")
RELAY_TLS_KEY = env.str("RELAY_TLS_KEY", default="")
RELAY_REQUIRE_TLS = env.bool("RELAY_REQUIRE_TLS", default=bool(RELAY_TLS_CERT))
RELAY_MAX_MESSAGE_SIZE = env.int("RELAY_MAX_MESSAGE_SIZE", default=25 * 1024 * 1024)
RELAY_MAX_RECIPIENTS = env.int("RELAY_MAX_RECIPIENTS", default=100)
RELAY_IDLE_TIMEOUT = env.int("RELAY_IDLE_TIMEOUT", default=300)
RELAY_TLS_HANDSHAKE_TIMEOUT = env_seconds("RELAY_TLS_HANDSHAKE_TIMEOUT", default=30.0)
RELAY_MAX_CONNECTIONS_PER_IP = env.int("RELAY_MAX_CONNECTIONS_PER_IP", default=50)
RELAY_AUTH_FAILURE_LIMIT = env.int("RELAY_AUTH_FAILURE_LIMIT", default=10)
RELAY_AUTH_FAILURE_WINDOW = env.int("RELAY_AUTH_FAILURE_WINDOW", default=600)
RELAY_AUTH_COOLOFF = env.int("RELAY_AUTH_COOLOFF", default=900)
RELAY_DB_THREADS = env.int("RELAY_DB_THREADS", default=8)
RELAY_DB_PREPARE = env.bool("RELAY_DB_PREPARE", default=True)
# Keep successful logins per relay process while the once-a-second version check confirms
# them (relay.smtp.login_cache).
RELAY_LOGIN_CACHE = env.bool("RELAY_LOGIN_CACHE", default=True)
# Seconds between two syncs of the limits with the other relay processes.
RELAY_LIMITS_SYNC_SECONDS = env.float("RELAY_LIMITS_SYNC_SECONDS", default=1.0)
# This relay process's name on the console (empty: host:pid); `runrelay --processes N`
# adds "-1" … "-N".
RELAY_NODE_NAME = env.str("RELAY_NODE_NAME", default="")

# --- API (/api/v1/) -------------------------------------------------------------------
# Calls a minute per API key (or per SMTP+ user logging in with HTTP Basic), counted in
# the database for every console process together; 0: no limit.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=600)
# The largest request body the console reads: room for a message of
# RELAY_MAX_MESSAGE_SIZE sent to the send API as JSON (base64 grows it by a third).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "API_MAX_REQUEST_SIZE",
    default=max(2_621_440, RELAY_MAX_MESSAGE_SIZE * 4 // 3 + 1024 * 1024),
)

# --- Delivery -------------------------------------------------------------------------
RELAY_UPSTREAM = env.str("RELAY_UPSTREAM", default=f"maildir:{VAR_DIR / 'maildir'}")
DELIVERY_RETRY_FIRST = env.int("DELIVERY_RETRY_FIRST", default=300)
DELIVERY_RETRY_MAX = env.int("DELIVERY_RETRY_MAX", default=3600)
DELIVERY_LIFETIME = env.int("DELIVERY_LIFETIME", default=5 * 24 * 3600)
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=300)
DELIVERY_TIMEOUT = env.int("DELIVERY_TIMEOUT", default=60)
DELIVERY_CONCURRENCY = env.int("DELIVERY_CONCURRENCY", default=8)
RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)

# --- Delivery status notifications (bounces) and the suppression list ----------------
# The From: of the DSNs SMTP+ sends (their envelope sender is always the null sender <>).
DSN_FROM = env.str("DSN_FROM", default=f"Mail Delivery System <MAILER-DAEMON@{RELAY_HOSTNAME}>")
# One "still trying" DSN once a recipient has waited this many hours; 0 = never.
DSN_DELAY_WARNING_HOURS = env.float("DSN_DELAY_WARNING_HOURS", default=0)
# At most this many DSNs per hour to one original sender of an account; 0 = no limit.
DSN_RATE_LIMIT = env.int("DSN_RATE_LIMIT", default=100)

# --- Email (alerts, invitations) ------------------------------------------------------
# Alerts never travel through our own relay: they use Django's email backend.
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "sent-emails")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="smtpplus@localhost")
ALERTS_FROM_EMAIL = env.str("ALERTS_FROM_EMAIL", default=DEFAULT_FROM_EMAIL)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# "As needed" alerts gather the events of this many seconds into one message.
ALERTS_COALESCE_SECONDS = env.int("ALERTS_COALESCE_SECONDS", default=30)
# A failed notification is retried after each of these delays, then marked failed.
ALERTS_RETRY_DELAYS = [int(x) for x in env.list("ALERTS_RETRY_DELAYS", default=["60", "300", "1800"])]
ALERTS_WEBHOOK_TIMEOUT = env.int("ALERTS_WEBHOOK_TIMEOUT", default=10)
# Webhooks on loopback, private or link-local addresses (this machine, the internal
# network, cloud metadata) are refused unless this is set: a tenant's webhook URL must not
# become a way to reach them from the server.
ALERTS_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERTS_WEBHOOK_ALLOW_PRIVATE", default=False)
ALERTS_LOOKBACK_SECONDS = env.int("ALERTS_LOOKBACK_SECONDS", default=900)
ALERTS_SEND_LEASE_SECONDS = env.int("ALERTS_SEND_LEASE_SECONDS", default=300)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
