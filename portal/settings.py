"""Onramp settings. Every value comes from the environment through django-environ.

DJANGO_ENV selects the defaults: "development" (the default) generates its keys into .env on first
run, "test" uses fixed test keys, "production" refuses to start without its secrets.
"""

import base64
import hashlib
import os
from pathlib import Path

import environ
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from portal.devkeys import dev_keys_ensure
from provisioning.addresses import trusted_proxies_parse

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The .env file read (and, in development, where generated keys are written); ENV_FILE can name another.
ENV_FILE = Path(os.environ.get("ENV_FILE") or BASE_DIR / ".env")
environ.Env.read_env(ENV_FILE, overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, test or production, not {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"
if DJANGO_ENV == "development":
    # No development key is derived from a value published here: missing ones are generated into .env.
    os.environ.update(dev_keys_ensure(ENV_FILE, os.environ))

# Fixed keys for the test suite only (DJANGO_ENV=test); development generates its own, production has none.
_TEST_KEYS = {
    "SECRET_KEY": "test-only-secret-key-never-used-outside-the-test-suite-7f3a9c",
    "VAULT_KEYS": base64.urlsafe_b64encode(hashlib.sha256(b"onramp test vault key").digest()).decode(),
    "AUDIT_KEYS": "test-only-audit-key-never-used-outside-the-test-suite-0b5e",
}


def _required_in_production(name: str) -> str:
    """Secrets have no default in production: a missing one stops the start."""
    if PRODUCTION:
        value = env.str(name, default="")
        if not value:
            raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production.")
        return value
    return env.str(name, default=_TEST_KEYS[name])


SECRET_KEY = _required_in_production("SECRET_KEY")
# Fernet keys for the credential vault, newest first (comma separated) so a key can be rotated.
VAULT_KEYS = [k.strip() for k in _required_in_production("VAULT_KEYS").split(",") if k.strip()]
for _position, _key in enumerate(VAULT_KEYS, start=1):
    # Checked at start, not at the first seal or reveal a run makes; the message never holds the key.
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"Key {_position} of VAULT_KEYS is not a Fernet key: each is 32 bytes in url-safe base64 "
            "(44 characters), as cryptography's Fernet.generate_key() makes them."
        ) from None
# HMAC keys of the audit chain, newest first: the newest signs new rows, the others still verify theirs.
AUDIT_KEYS = [k.strip() for k in _required_in_production("AUDIT_KEYS").split(",") if k.strip()]
if PRODUCTION and any(len(key) < 32 for key in AUDIT_KEYS):
    raise ImproperlyConfigured("Each key of AUDIT_KEYS must be at least 32 characters long.")

DEBUG = env.bool("DEBUG", default=DJANGO_ENV == "development")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "csp",
    "provisioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL in the address: 400 before any view or query (portal/middleware.py).
    "portal.middleware.NulRefusedMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Re-checks provider-signed sessions with the provider (after htmx's, which it reads).
    "provisioning.identity.oidc.SessionRenewalMiddleware",
    # Last, as django-axes asks, so it sees the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "provisioning.context_processors.vocabulary",
                "provisioning.context_processors.approvals",
                "provisioning.identity.auth.auth_context",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: take the write lock at BEGIN and wait for it.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# Each statement's values go to PostgreSQL apart from it (psycopg 3's server-side binding), and a statement a
# connection has run 5 times is prepared: no quoting in the worker, no planning again in PostgreSQL. Off behind a
# pooler in transaction mode (PgBouncer's), which cannot keep a connection's prepared statements.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_SERVER_SIDE_BINDING", default=True
):
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's password check; superusers only while OIDC is configured (break-glass).
    "provisioning.identity.auth.PasswordBackend",
    # The identity provider's sign-in (OIDC below); inert while OIDC_ISSUER is empty.
    "provisioning.identity.oidc.OidcBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# One date-and-time format, with its zone, on every page and in the admin (portal/formats/en/formats.py).
FORMAT_MODULE_PATH = ["portal.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security headers (all environments; the secure-transport ones in production) ---
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Login throttling (django-axes) ---
# Two limits within the cool-off: failures of one username from one address (guessing a password), and
# failures from one address whatever the username (password spraying); provisioning/identity/login_limits.py.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_IP_FAILURE_LIMIT = env.int("AXES_IP_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "provisioning.identity.login_limits.LoginLimitsHandler"
AXES_CLIENT_IP_CALLABLE = "provisioning.addresses.client_ip"
AXES_RESET_ON_SUCCESS = True
# The proxies in front of gunicorn (addresses or networks, comma separated) whose X-Forwarded-For is believed:
# a request from one of them is counted and audited by the address it forwards (provisioning/addresses.py).
# Default none: REMOTE_ADDR, for a forged header from anyone reaching gunicorn directly must change nothing.
# docker-compose.yml names its internal network, where nginx is.
try:
    TRUSTED_PROXIES = trusted_proxies_parse(env.list("TRUSTED_PROXIES", default=[]))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False

# --- Sign-in with the agency's identity provider (OpenID Connect, mozilla-django-oidc) ---
# Empty OIDC_ISSUER: Onramp's own passwords, as before (development, the demo). Set: everyone signs in
# through the provider, passwords are for superusers only (break-glass). See docs/deploying.md, "Going to production".
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").rstrip("/")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="") or "single sign-on"
OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_ALLOWED_DOMAINS = [d.strip().lstrip("@").lower() for d in env.list("OIDC_ALLOWED_DOMAINS", default=[])]
OIDC_RP_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
# The claim that lists the person's groups, and which of its values are Onramp's groups. Empty claim
# (Google Workspace sends none): Admins assign groups in the admin.
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="")
OIDC_GROUP_MAP = env.dict("OIDC_GROUP_MAP", default={})
# Refused sign-ins through the provider from one address, whoever they were for, before that address may not
# sign in through it for AXES_COOLOFF_HOURS (a flood). One identity at the provider is throttled after
# AXES_FAILURE_LIMIT refusals (provisioning/identity/oidc.py); django-axes does not count sign-ins through the provider.
OIDC_IP_FAILURE_LIMIT = env.int("OIDC_IP_FAILURE_LIMIT", default=100)
# A provider that never sends email_verified (its emails are all its own, verified by it): accept its absence.
# Off by default: then only the boolean true lets someone in.
OIDC_TRUST_MISSING_EMAIL_VERIFIED = env.bool("OIDC_TRUST_MISSING_EMAIL_VERIFIED", default=False)
# The prompt sent with a fresh sign-in (with max_age=0): "login", or empty where unsupported (Google).
OIDC_REAUTH_PROMPT = env.str("OIDC_REAUTH_PROMPT", default="login")
# A provider whose ID token has no auth_time (Google may omit it, and ignores prompt=login): count its answer to
# a fresh sign-in (max_age=0) as the sign-in itself. Off by default: without auth_time, no secret is shown.
OIDC_TRUST_MISSING_AUTH_TIME = env.bool("OIDC_TRUST_MISSING_AUTH_TIME", default=False)
# Seconds between checks of a session with the provider (mozilla-django-oidc's name for it).
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env.int("OIDC_RENEW_INTERVAL", default=15 * 60)
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_callback"
# Revealing a secret or issuing a new key needs a sign-in younger than this many seconds.
FRESH_AUTH_MAX_AGE = env.int("FRESH_AUTH_MAX_AGE", default=10 * 60)
if OIDC_ISSUER:
    _needed = ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_ALLOWED_DOMAINS")
    _missing = [name for name in _needed if not env.str(name, default="")]
    if _missing:
        raise ImproperlyConfigured(f"OIDC_ISSUER is set: {', '.join(_missing)} must be set too.")
    # Onramp's two groups (provisioning/identity/permissions.py).
    if not set(OIDC_GROUP_MAP.values()) <= {"Tech leads", "Admins"}:
        raise ImproperlyConfigured("OIDC_GROUP_MAP maps provider groups to 'Tech leads' or 'Admins' only.")

# --- Celery (broker: Redis) ---
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# The queue tasks go to and workers take from: a benchmark's workers get one of their own beside a test's worker.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
# Steps are safe to run twice, so a task is acknowledged only once it is done.
CELERY_TASK_ACKS_LATE = True
# Celery closes the database connection around every task unless this is set: a PostgreSQL backend
# started per step. Kept instead, and closed by CONN_MAX_AGE and errors (portal/celery.py).
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Enforced by the prefork pool only: the threads pool (bin/run, docker-compose.yml) ignores them (docs/performance.md).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# What a task prints stays plain output: the development console's emails read as emails in `make run`, not as
# "WARNING celery.redirected" log lines (the default turns each printed line into a warning).
CELERY_WORKER_REDIRECT_STDOUTS = False
# How often a worker's busy thread hands Python's lock to a waiting one (CPython's default: 5 ms). A thread pool's
# steps mostly wait on AWS; one whose answer came waits at most this long for the lock (portal/celery.py).
WORKER_SWITCH_INTERVAL_MS = env.float("WORKER_SWITCH_INTERVAL_MS", default=0.5)
# Seconds between two checkpoints of the audit chain (provisioning/audit/anchor.py), and where they go
# besides the log: a directory outside the database (in compose, a volume only the beat service mounts).
AUDIT_CHECKPOINT_EVERY = env.int("AUDIT_CHECKPOINT_EVERY", default=300)
AUDIT_CHECKPOINT_DIR = Path(env.str("AUDIT_CHECKPOINT_DIR", default="") or BASE_DIR / "var" / "audit-checkpoints")
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-runs": {"task": "provisioning.tasks.runs_sweep", "schedule": 60.0},
    "expire-approvals": {"task": "provisioning.tasks.approvals_expire", "schedule": crontab(minute="*/5")},
    "expire-credentials": {"task": "provisioning.tasks.credentials_expire", "schedule": crontab(minute="*/5")},
    "audit-checkpoint": {"task": "provisioning.audit_checkpoint", "schedule": float(AUDIT_CHECKPOINT_EVERY)},
    "warn-expiring-credentials": {"task": "provisioning.tasks.credentials_warn", "schedule": crontab(minute="*/15")},
    # The drift check of every customer (provisioning/drift.py): DRIFT_SCHEDULE is a crontab line
    # ("minute hour day-of-month month day-of-week"), nightly at 02:30 UTC by default.
    "drift-check": {
        "task": "provisioning.tasks.drift_checks_start",
        "schedule": crontab.from_string(env.str("DRIFT_SCHEDULE", default="30 2 * * *")),
    },
    # Each customer's role version read again beside the drift check (provisioning.customers.role_refresh).
    "role-versions": {
        "task": "provisioning.tasks.roles_refresh",
        "schedule": crontab.from_string(env.str("DRIFT_SCHEDULE", default="30 2 * * *")),
    },
}
CELERY_IMPORTS = ("provisioning.audit.anchor",)

# --- Notifications (provisioning/notify.py): email, and optionally a Slack-compatible webhook ---
# EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ sets EMAIL_BACKEND, EMAIL_HOST,
# EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS/SSL); the console in development.
_EMAIL_URL = env.str("EMAIL_URL", default="") or ("smtp://localhost:25" if PRODUCTION else "consolemail://")
globals().update({name: value for name, value in env.email_url_config(_EMAIL_URL).items() if value not in (None, "")})
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="") or "Onramp <onramp@localhost>"
# The portal's address as people reach it, for the links in notifications.
PORTAL_URL = env.str("PORTAL_URL", default="").rstrip("/") or (
    f"https://{ALLOWED_HOSTS[0].lstrip('.')}" if PRODUCTION and ALLOWED_HOSTS else "http://127.0.0.1:8000"
)
# A Slack-compatible incoming webhook ({"text": …}); empty: email only. The URL is a secret: never logged.
NOTIFY_WEBHOOK_URL = env.str("NOTIFY_WEBHOOK_URL", default="")
# Development's debug page lists settings and the environment: hide the webhook's URL (and the other URLs
# that may hold a password) from it, whose names Django's own filter does not recognise (portal/reporting.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.reporting.ExceptionReporterFilter"
NOTIFY_WEBHOOK_TIMEOUT = env.float("NOTIFY_WEBHOOK_TIMEOUT", default=5)
# Seconds before an unrevealed secret is wiped that its owner is told (default 2 hours).
NOTIFY_SECRET_WARNING = env.int("NOTIFY_SECRET_WARNING", default=2 * 3600)

# --- Drift (provisioning/drift.py) ---
# An access key at least this many days old is reported as due for rotation.
DRIFT_KEY_MAX_AGE_DAYS = env.int("DRIFT_KEY_MAX_AGE_DAYS", default=90)
# How many customers' accounts are read at once, at most (each read makes one AWS call at a time, so this is
# also the bound on concurrent calls overall; per account it is one).
DRIFT_CONCURRENCY = env.int("DRIFT_CONCURRENCY", default=8)

# --- Onramp ---
# Seconds an unrevealed generated secret lives before the vault wipes it.
CREDENTIAL_TTL = env.int("CREDENTIAL_TTL", default=24 * 3600)
# Seconds without progress after which the sweeper re-enqueues a run's steps.
RUN_STALE_AFTER = env.int("RUN_STALE_AFTER", default=300)


def _duration_seconds(name: str, default: str) -> int:
    """A duration setting: seconds ("86400"), or a number with a unit ("30m", "24h", "2d")."""
    text = env.str(name, default=default).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    if not number.isdigit() or int(number) == 0:
        raise ImproperlyConfigured(f"{name} is a duration: seconds (86400) or a number with s, m, h or d (24h).")
    return int(number) * unit


# Approvals (provisioning/approvals.py): a new customer's rule (nothing, risky or every), and how long a plan
# waits for its second person before it expires.
APPROVAL_DEFAULT = env.str("APPROVAL_DEFAULT", default="risky")
if APPROVAL_DEFAULT not in ("nothing", "risky", "every"):
    raise ImproperlyConfigured("APPROVAL_DEFAULT is nothing, risky or every.")
APPROVAL_TTL = _duration_seconds("APPROVAL_TTL", "24h")
# Sandbox AWS (moto's server) for development and tests; unset for real AWS.
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="") or None
# A command that deploys a customer's role where the accounts are the installation's own (make run sets its
# sandbox tooling here); the customer's admin page shows it, followed by the customer's slug. Empty on AWS.
ROLE_DEPLOY_COMMAND = env.str("ROLE_DEPLOY_COMMAND", default="")
# The agency's S3 bucket where each version of the role's template is published once, readable by anyone
# (`manage.py role_template bucket` sets it up, `manage.py role_template publish` publishes), and its Region.
ROLE_TEMPLATE_BUCKET = env.str("ROLE_TEMPLATE_BUCKET", default="")
ROLE_TEMPLATE_REGION = env.str("ROLE_TEMPLATE_REGION", default="us-east-1")
# Set-up links (provisioning/setup_links.py): days a link lives, and requests one address may make to the
# set-up pages in a window of seconds (counted per process, in CACHES["limits"]).
SETUP_LINK_DAYS = env.int("SETUP_LINK_DAYS", default=14)
SETUP_RATE_LIMIT = env.int("SETUP_RATE_LIMIT", default=60)
SETUP_RATE_WINDOW = env.int("SETUP_RATE_WINDOW", default=600)
# After a link's first opening Onramp tries the customer's role by itself for this many seconds, waiting
# SETUP_WATCH_FIRST seconds after the first try and twice as long after each, SETUP_WATCH_MAX_DELAY at most.
SETUP_WATCH_SECONDS = env.int("SETUP_WATCH_SECONDS", default=1800)
SETUP_WATCH_FIRST = env.float("SETUP_WATCH_FIRST", default=10)
SETUP_WATCH_MAX_DELAY = env.float("SETUP_WATCH_MAX_DELAY", default=300)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "limits": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "limits"},
}
# The portal's own AWS account, named in the trust policy customers give Onramp's role.
PORTAL_AWS_ACCOUNT_ID = env.str("PORTAL_AWS_ACCOUNT_ID", default="123456789012")
AWS_MAX_ATTEMPTS = env.int("AWS_MAX_ATTEMPTS", default=5)
# Seconds a call that depends on something created moments ago waits out AWS's eventual consistency
# (NoSuchEntity right after CreateUser, NoSuchBucket right after CreateBucket).
AWS_SETTLE_SECONDS = env.float("AWS_SETTLE_SECONDS", default=30)
AWS_CONNECT_TIMEOUT = env.float("AWS_CONNECT_TIMEOUT", default=5)
AWS_READ_TIMEOUT = env.float("AWS_READ_TIMEOUT", default=30)
# Bounded Celery retries of a step after botocore's own retries gave up on a passing error.
STEP_MAX_RETRIES = env.int("STEP_MAX_RETRIES", default=3)
STEP_RETRY_BACKOFF = env.float("STEP_RETRY_BACKOFF", default=2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stdout"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # botocore at DEBUG would print response bodies, generated secrets included.
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
