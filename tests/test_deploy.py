"""What production runs: the static files built with production settings by the one script the
Dockerfile runs, the compose file's TLS proxy in front of gunicorn on the internal network only, and the
database roles of deploy/postgres/init-roles.sql, tried on the real PostgreSQL."""

import fnmatch
import json
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat")


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "VAULT_KEYS", "AUDIT_"))}
    return {**env, "PYTHON": sys.executable, **extra}


# --- The static files (the production image served 500 on every page) ---------------------

RENDER = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/login/", secure=True, HTTP_HOST="onramp.agency.example")
print(json.dumps({"status": response.status_code, "body": response.content.decode()}))
"""


def test_the_build_script_collects_what_production_serves_and_a_page_renders_on_it(tmp_path):
    static = tmp_path / "static"
    built = subprocess.run(
        [str(ROOT / "bin" / "build-static")],
        cwd=ROOT, env=_clean_env(STATIC_ROOT=str(static)), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    manifest = json.loads((static / "staticfiles.json").read_text())["paths"]
    assert "css/onramp.css" in manifest and "js/onramp.js" in manifest

    production = _clean_env(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="portal.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        VAULT_KEYS="0Jm3sQHcZ1k4zXo2b6vV9eG8yT7wR5uP3nL1aD0fH2s=",
        AUDIT_KEYS=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="onramp.agency.example",
        DATABASE_URL="sqlite:///:memory:",
        STATIC_ROOT=str(static),
    )
    done = subprocess.run([sys.executable, "-c", RENDER], cwd=ROOT, env=production, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["status"] == 200
    hashed_css = manifest["css/onramp.css"]
    assert hashed_css != "css/onramp.css" and f"/static/{hashed_css}" in page["body"]
    assert (static / hashed_css).exists()


def test_the_dockerfile_builds_static_files_with_the_script_and_keeps_no_key():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN bin/build-static" in dockerfile
    assert "collectstatic" not in dockerfile and "DJANGO_ENV=development" not in dockerfile
    assert not re.search(r"^\s*(ENV|ARG)\b.*(SECRET_KEY|VAULT_KEYS|AUDIT_KEYS)", dockerfile, re.M)


# --- The Dockerfile's targets: what each image holds -----------------------------------------------------


@dataclass
class Stage:
    name: str
    parent: str  # the stage (or image) it is built FROM
    copies: list[list[str]] = field(default_factory=list)  # each COPY's sources (from the build context)
    requirements: list[str] = field(default_factory=list)  # the files of its `pip install -r`


def dockerfile_stages(text: str) -> dict[str, Stage]:
    """The Dockerfile's stages, by name, with what each copies from the build context and pip installs."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else f"stage{len(stages)}"
            current = stages[name] = Stage(name=name, parent=words[1])
        elif instruction in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            arguments = [w for w in words[1:] if not w.startswith("--")]
            current.copies.append(arguments[:-1])
        elif instruction == "RUN":
            current.requirements += re.findall(r"pip install[^&;]*?-r\s+(\S+)", line)
    return stages


def image_requirements(stages: dict[str, Stage], target: str) -> list[str]:
    """Every requirement line the target's image installs: its stage's and its parents', `-r` files followed."""
    lines: list[str] = []

    def read(name: str) -> None:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                read(line[3:].strip())
            elif line:
                lines.append(line)

    stage = stages[target]
    while True:
        for name in stage.requirements:
            read(name)
        if stage.parent not in stages:
            return lines
        stage = stages[stage.parent]


def image_files(stages: dict[str, Stage], target: str, context: list[str]) -> set[str]:
    """Which files of the build context (paths relative to it) the target's image copies in."""
    copied: set[str] = set()
    stage = stages[target]
    while True:
        for sources in stage.copies:
            for source in sources:
                source = source.strip("/") if source not in (".", "./") else ""
                copied |= {
                    path
                    for path in context
                    if not source or path == source or path.startswith(source + "/") or fnmatch.fnmatch(path, source)
                }
        if stage.parent not in stages:
            return copied
        stage = stages[stage.parent]


STAGES = dockerfile_stages((ROOT / "Dockerfile").read_text())
OPERATOR_SECRETS = [".env", "db.env", "certs/privkey.pem", "certs/fullchain.pem"]


def test_point_9_the_image_copies_none_of_the_operators_secrets_from_the_build_context():
    """Issue 26, point 9: the directory an operator builds in holds .env, db.env and certs/ (docs/deploying.md,
    "Running it with docker compose"); no target of the Dockerfile copies them into an image."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    context = tracked.split() + OPERATOR_SECRETS + ["sandbox-state.pickle.gz", "db.sqlite3", ".venv/bin/python"]
    production = image_files(STAGES, "production", context)
    assert {"manage.py", "portal/settings.py", "provisioning/aws/accounts.py", "bin/build-static"} <= production
    assert not any(path.startswith(("tests/", "sandbox/", "bench/")) for path in production)
    for target in STAGES:
        copied = image_files(STAGES, target, context)
        assert not copied & {*OPERATOR_SECRETS, "sandbox-state.pickle.gz", "db.sqlite3", ".venv/bin/python"}, target


def test_the_production_image_installs_no_moto_and_the_sandbox_image_does():
    assert list(STAGES)[-1] == "production"  # built when no target is named
    production = image_requirements(STAGES, "production")
    assert production and any(line.startswith("Django==") for line in production)
    assert not any(line.lower().startswith("moto") for line in production), production
    assert any(line.startswith("moto[server]==") for line in image_requirements(STAGES, "sandbox"))
    assert image_files(STAGES, "sandbox", ["sandbox/strict.py", "portal/settings.py"]) == {"sandbox/strict.py"}
    # The application's own requirements (what the production image has) name no moto either; make run and
    # make test install the sandbox's (make test's requirements-dev.txt includes them).
    assert "moto" not in (ROOT / "requirements.txt").read_text().lower()
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PIP) install -r requirements-sandbox.txt" in makefile
    assert "-r requirements-sandbox.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def test_compose_builds_the_app_from_the_production_target_and_the_dev_sandbox_from_the_sandbox_target():
    for name in (*APP_SERVICES, "migrate"):
        assert SERVICES[name]["build"] == {"context": ".", "target": "production"}, name
        assert SERVICES[name]["image"] == "onramp:latest", name
    sandbox = SERVICES["sandbox"]
    assert sandbox["profiles"] == ["dev"]
    assert sandbox["build"] == {"context": ".", "target": "sandbox"}
    assert sandbox["image"] != "onramp:latest"  # never the production image's tag
    assert sandbox["command"][:3] == ["python", "-m", "sandbox.state"]
    assert set(COMPOSE["volumes"]) >= {"sandbox-state"}


# --- Compose: TLS in front, gunicorn inside, the app as a role that owns nothing -----------------


def test_compose_puts_a_tls_proxy_with_the_operators_certificates_in_front_of_gunicorn():
    proxy, web = SERVICES["proxy"], SERVICES["web"]
    assert proxy["image"].startswith(("nginx:", "caddy:"))
    assert sorted(proxy["ports"]) == ["443:443", "80:80"]
    certs = [v for v in proxy["volumes"] if v.endswith(":/etc/nginx/certs:ro")]
    assert certs == ["${TLS_CERT_DIR:-./certs}:/etc/nginx/certs:ro"]
    conf = (ROOT / "deploy" / "nginx" / "onramp.conf").read_text()
    assert "listen 443 ssl;" in conf and "ssl_certificate /etc/nginx/certs/fullchain.pem;" in conf
    assert "proxy_pass http://web:8000;" in conf
    assert "proxy_set_header X-Forwarded-Proto https;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "return 301 https://" in conf

    # gunicorn: nothing published, bound to its address on the internal network only.
    assert "ports" not in web
    address = web["networks"]["internal"]["ipv4_address"]
    assert web["command"][web["command"].index("--bind") + 1] == f"{address}:8000"
    assert COMPOSE["networks"]["internal"]["internal"] is True
    assert "internal" in proxy["networks"] and "edge" in proxy["networks"]
    assert not any("ports" in SERVICES[name] for name in SERVICES if name != "proxy")
    assert SERVICES["web"]["environment"]["DJANGO_ENV"] == "production"


def _db_user(url: str) -> str:
    return re.match(r"postgres://([^:@]+)[:@]", url).group(1)


def test_compose_runs_the_app_as_a_role_that_owns_nothing_and_migrates_as_the_owner():
    postgres = SERVICES["postgres"]
    superuser = postgres["environment"]["POSTGRES_USER"]
    for name in APP_SERVICES:
        service = SERVICES[name]
        assert _db_user(service["environment"]["DATABASE_URL"]) == "onramp_app" != superuser, name
        assert service["env_file"] == ".env", name  # never db.env: no owner or superuser password
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    migrate = " ".join(SERVICES["migrate"]["command"])
    assert "postgres://onramp_owner:" in migrate and "manage.py migrate" in migrate
    assert SERVICES["migrate"]["restart"] == "no"
    assert "./deploy/postgres/init-roles.sql:/docker-entrypoint-initdb.d/10-roles.sql:ro" in postgres["volumes"]
    # The audit checkpoints live in a volume of the beat service, outside the database.
    beat = SERVICES["beat"]
    assert beat["environment"]["AUDIT_CHECKPOINT_DIR"] == "/var/lib/onramp/audit-checkpoints"
    assert "audit-checkpoints:/var/lib/onramp/audit-checkpoints" in beat["volumes"]


# --- The roles, on the real PostgreSQL ------------------------------------------------------------


def _psql(database: str, sql: str = "", *, file: Path | None = None, env: dict | None = None) -> None:
    db = connection.settings_dict
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"]]
    args += ["-d", database] + (["-f", str(file)] if file else ["-c", sql])
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def _drop(database: str) -> None:
    _psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _psql("postgres", "DROP ROLE IF EXISTS onramp_app")
    _psql("postgres", "DROP ROLE IF EXISTS onramp_owner")


@pytest.fixture
def roles_database(db):
    database = f"{connection.settings_dict['NAME']}_roles"
    _drop(database)
    _psql("postgres", f'CREATE DATABASE "{database}"')
    passwords = {"ONRAMP_OWNER_DB_PASSWORD": "owner-pw", "ONRAMP_APP_DB_PASSWORD": "app-pw"}
    _psql(database, file=ROOT / "deploy" / "postgres" / "init-roles.sql", env=passwords)
    yield database
    _drop(database)


def _as(role: str, database: str, script: str) -> subprocess.CompletedProcess:
    db = connection.settings_dict
    url = f"postgres://{role}:pw@{db['HOST']}:{db['PORT']}/{database}"
    env = _clean_env(DJANGO_SETTINGS_MODULE="portal.settings", DJANGO_ENV="test", DATABASE_URL=url)
    return subprocess.run([sys.executable, *script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


WRITE_AUDIT = (
    "-c",
    "import django; django.setup(); from provisioning.audit.chain import audit_record; "
    "print(audit_record(action='test.role', actor_label='app').pk)",
)


def test_the_app_role_writes_the_chain_but_cannot_truncate_disable_the_guard_or_rewrite(roles_database):
    migrated = _as("onramp_owner", roles_database, ("manage.py", "migrate", "--no-input", "-v", "0"))
    assert migrated.returncode == 0, migrated.stderr
    written = _as("onramp_app", roles_database, WRITE_AUDIT)
    assert written.returncode == 0, written.stderr  # the advisory lock, the read, the insert, the sequence

    db = connection.settings_dict
    dsn = {"host": db["HOST"], "port": db["PORT"], "dbname": roles_database, "user": "onramp_app"}
    refused = [
        "TRUNCATE provisioning_auditevent",
        "ALTER TABLE provisioning_auditevent DISABLE TRIGGER provisioning_auditevent_append_only",
        "ALTER TABLE provisioning_auditevent DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
        "UPDATE provisioning_auditevent SET target = 'forged'",
        "DELETE FROM provisioning_auditevent",
        "DROP TABLE provisioning_auditevent",
        "CREATE TABLE evil (id int)",
    ]
    for sql in refused:
        with psycopg.connect(**dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(sql)
        # Refused by the role's rights, before the append-only trigger would have had to.
        assert "append-only" not in str(caught.value), sql
    with psycopg.connect(**dsn) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SELECT count(*) FROM provisioning_auditevent").fetchone() == (1,)
        conn.execute("UPDATE provisioning_customer SET notes = notes")  # its other tables: rows as usual
