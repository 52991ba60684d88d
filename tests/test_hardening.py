"""Production settings: `check --deploy` is clean, secrets are required, the headers and cookies are
strict, and no template carries inline script."""

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client
from django.views.debug import technical_500_response

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
# Far from the test that raises: the debug page quotes the lines around the raise.
WEBHOOK_TOKEN = "T0000000/B0000000/webhook-token-never-on-a-page"
WEBHOOK_URL = f"https://hooks.slack.example/services/{WEBHOOK_TOKEN}"


def _production_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "VAULT_KEYS", "AUDIT_"))}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="portal.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        VAULT_KEYS=Fernet.generate_key().decode(),
        AUDIT_KEYS=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="onramp.agency.example",
        DATABASE_URL="sqlite:///:memory:",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    """manage.py in a subprocess, reading no developer's .env of this checkout and writing none into it."""
    env = {"ENV_FILE": str(Path(tempfile.mkdtemp()) / ".env"), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_a_short_audit_key():
    done = _manage("check", env=_production_env(AUDIT_KEYS="too-short"))
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].endswith("Each key of AUDIT_KEYS must be at least 32 characters long.")


def test_check_deploy_has_no_warnings_in_production():
    done = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNING" not in done.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "VAULT_KEYS", "AUDIT_KEYS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    done = _manage("check", env=_production_env(**{missing: None}))
    assert done.returncode != 0
    assert f"{missing} must be set when DJANGO_ENV=production." in done.stderr
    # One clear line at the end, whatever the traceback above it.
    assert done.stderr.strip().splitlines()[-1].endswith(f"{missing} must be set when DJANGO_ENV=production.")


PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client, override_settings
# The manifest storage needs `collectstatic`; the headers and cookies do not depend on it.
override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
response = Client().get("/login/", secure=True, HTTP_HOST="onramp.agency.example")
print(json.dumps({
    "status": response.status_code,
    "headers": dict(response.headers),
    "cookies": {name: dict(morsel) for name, morsel in response.cookies.items()},
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "ssl_redirect": Client().get("/login/", HTTP_HOST="onramp.agency.example").status_code,
}))
"""


def test_production_sends_hsts_and_secure_cookies():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200
    hsts = seen["headers"]["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts
    assert seen["headers"]["X-Frame-Options"] == "DENY"
    assert seen["cookies"]["csrftoken"]["secure"] is True
    assert seen["session_cookie_secure"] is True and seen["csrf_cookie_secure"] is True
    assert seen["ssl_redirect"] == 301  # plain http is sent to https


def _csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.django_db
def test_responses_carry_frame_denial_and_a_csp_without_inline_script(alice):
    client = Client()
    client.force_login(alice)
    for url in ("/login/", "/", "/onboard/", "/audit/"):
        response = client.get(url)
        assert response.status_code in (200, 302), url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["X-Content-Type-Options"] == "nosniff", url
        csp = _csp(response)
        scripts = csp.get("script-src", csp.get("default-src"))
        assert scripts == ["'self'"], (url, scripts)
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["object-src"] == ["'none'"]
        if response.status_code == 200:
            _assert_no_inline_script(response.content.decode(), url)


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
_JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def _assert_no_inline_script(html: str, where: str) -> None:
    for attrs, body in _SCRIPT.findall(html):
        data_block = re.search(r"""type\s*=\s*["']application/(?:ld\+)?json["']""", attrs, re.I)
        assert "src=" in attrs.replace(" ", "") or data_block or not body.strip(), f"inline <script> in {where}"
        if "src=" in attrs.replace(" ", ""):
            assert not body.strip(), f"<script src> with a body in {where}"
    assert not _HANDLER.search(html), f"inline event handler in {where}: {_HANDLER.search(html).group(0)}"
    assert not _JS_URL.search(html), f"javascript: URL in {where}"


def test_no_template_has_inline_script_or_event_handlers():
    templates = [path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html")]
    assert len(templates) >= 10
    for path in templates:
        _assert_no_inline_script(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def test_the_inline_script_check_catches_what_it_should():
    """The checker above, on samples: it would fail on the things it forbids."""
    for bad in (
        "<script>alert(1)</script>",
        '<button onclick="go()">x</button>',
        '<a href="javascript:go()">x</a>',
        '<script src="/a.js">alert(1)</script>',
    ):
        with pytest.raises(AssertionError):
            _assert_no_inline_script(bad, "sample")
    _assert_no_inline_script('<script id="d" type="application/json">{"a": 1}</script>', "sample")
    _assert_no_inline_script('<script src="/static/js/onramp.js" defer></script>', "sample")


DEV_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({"secret": s.SECRET_KEY, "vault": s.VAULT_KEYS, "audit": s.AUDIT_KEYS}))
"""
# What development used to run on: a SECRET_KEY published in this repository, and a vault key derived from it.
PUBLISHED_DEV_SECRET = "dev-only-secret-key-do-not-use-in-production-7f3a9c"


def _development_keys(env_file: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "VAULT_KEYS", "AUDIT_"))}
    env.update(DJANGO_ENV="development", DJANGO_SETTINGS_MODULE="portal.settings", ENV_FILE=str(env_file))
    env["DATABASE_URL"] = "sqlite:///:memory:"
    done = subprocess.run([sys.executable, "-c", DEV_PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _derived(secret: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).decode()


def test_development_generates_its_keys_into_env_instead_of_deriving_them_from_a_published_one(tmp_path):
    env_file = tmp_path / ".env"
    first = _development_keys(env_file)
    assert first["secret"] != PUBLISHED_DEV_SECRET
    assert first["vault"] != [_derived(PUBLISHED_DEV_SECRET)] and first["vault"] != [_derived(first["secret"])]
    Fernet(first["vault"][0].encode())  # a real Fernet key
    assert len(first["audit"]) == 1 and len(first["audit"][0]) >= 32
    text = env_file.read_text()
    assert all(f"{name}=" in text for name in ("SECRET_KEY", "VAULT_KEYS", "AUDIT_KEYS"))
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert _development_keys(env_file) == first  # read back on the next start, not made again
    # A fresh machine makes its own keys.
    assert _development_keys(tmp_path / "other.env")["vault"] != first["vault"]


def test_development_fills_the_empty_keys_of_a_copied_env_example(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text().replace("DJANGO_ENV=development\n", ""))
    keys = _development_keys(env_file)
    lines = env_file.read_text().splitlines()
    assert [line for line in lines if line.startswith("VAULT_KEYS=")] == [f"VAULT_KEYS={keys['vault'][0]}"]
    assert "PORTAL_AWS_ACCOUNT_ID=123456789012" in lines  # the rest of the file is kept


def test_the_env_file_is_never_committed():
    done = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, timeout=30)
    assert done.returncode == 0


@pytest.mark.parametrize("command", [("check",), ("check", "--deploy")])
def test_point_11_an_invalid_vault_key_stops_the_start_with_a_sentence(command):
    good = Fernet.generate_key().decode()
    invalid = "not-a-fernet-key-but-long-enough-to-look-like-one"
    done = _manage(*command, env=_production_env(VAULT_KEYS=f"{good},{invalid}"))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith("Key 2 of VAULT_KEYS is not a Fernet key: each is 32 bytes in url-safe base64 "
                         "(44 characters), as cryptography's Fernet.generate_key() makes them.")  # fmt: skip
    assert invalid not in done.stderr and good not in done.stderr


def test_point_15_the_debug_page_hides_the_webhook_url_and_its_token(alice, settings, rf):
    """Development's debug page (DEBUG on, shown to whoever hit the error, any tech lead) lists the settings and,
    under runserver, the environment: neither shows the webhook's URL."""
    settings.DEBUG = True
    settings.NOTIFY_WEBHOOK_URL = WEBHOOK_URL
    request = rf.get("/", NOTIFY_WEBHOOK_URL=WEBHOOK_URL)  # as runserver copies os.environ into META
    request.user = alice
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info())
    text = page.content.decode()
    assert "NOTIFY_WEBHOOK_URL" in text and "RuntimeError" in text  # the page is the debug page, the name listed
    found = [text[max(0, at - 300) : at] for at in (text.find(WEBHOOK_TOKEN), text.find(WEBHOOK_URL)) if at >= 0]
    assert not found, found
