"""The house: configuration, health, the worker path, login, groups, compose."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse

from portal.celery import app as celery_app
from provisioning import tasks

ROOT = Path(__file__).resolve().parent.parent


def test_a_task_goes_through_redis_to_a_real_worker(celery_worker):
    assert celery_app.conf.task_always_eager is False
    assert celery_app.conf.broker_url.startswith("redis://")
    result = tasks.ping.delay(41)
    assert result.get(timeout=20) == 42
    # The worker that ran it answers on the broker too: it is a separate consumer, not this thread.
    replies = celery_app.control.ping(timeout=2)
    assert any(celery_worker.hostname in reply for reply in replies)


@pytest.mark.django_db
def test_healthz_names_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_broker_when_it_is_down(client):
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.broker_url = original
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("down")


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_naming_the_database_when_it_is_down(client):
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503
    assert response.json()["database"].startswith("down")
    assert response.json()["broker"] == "ok"


@pytest.mark.django_db
def test_every_page_but_login_needs_a_login(client):
    for name in ("home", "onboard", "audit_history"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    login = client.get(reverse("login"))
    assert login.status_code == 200
    assert b'name="username"' in login.content and b"Log in to Onramp" in login.content


@pytest.mark.django_db
def test_groups_come_from_a_data_migration():
    leads = Group.objects.get(name="Tech leads")
    admins = Group.objects.get(name="Admins")
    assert set(leads.permissions.values_list("codename", flat=True)) == {
        "view_customer", "view_run", "view_auditevent",
    }  # fmt: skip
    admin_perms = set(admins.permissions.values_list("codename", flat=True))
    assert {"add_customer", "change_customer", "delete_customer", "view_auditevent"} <= admin_perms


@pytest.mark.django_db
def test_a_tech_lead_logs_in_and_sees_the_home_page(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert b"Onboard a customer" in home.content


def test_compose_describes_the_production_like_stack():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "sandbox"} <= set(services)
    assert services["web"]["image"] == services["worker"]["image"] == services["beat"]["image"]
    assert services["web"]["build"] == services["worker"]["build"] == {"context": ".", "target": "production"}
    assert "gunicorn" in " ".join(services["web"]["command"])
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "portal", "beat"]
    assert services["sandbox"]["profiles"] == ["dev"]
    assert services["sandbox"]["command"][:3] == ["python", "-m", "sandbox.state"]
    assert services["sandbox"]["environment"]["MOTO_IAM_LOAD_MANAGED_POLICIES"] == "true"
    assert "profiles" not in services["web"]


def _manage(*args, env):
    """manage.py in a subprocess, reading no developer's .env of this checkout and writing none into it."""
    env_file = Path(tempfile.mkdtemp()) / ".env"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "ENV_FILE": str(env_file), **env},
    )  # fmt: skip


PROD = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "x7!Lq2@pZ9#vR4$kT1%mW8^nY3&bC6*dF0(gH5)jK-sa-very-long-secret-key",
    "VAULT_KEYS": "0Jm3sQHcZ1k4zXo2b6vV9eG8yT7wR5uP3nL1aD0fH2s=",
    "AUDIT_KEYS": "hP3xQ9-vN2kR7sT1wY5zA8cE4gJ6mL0oB_dF3hK9nM2",
    "ALLOWED_HOSTS": "onramp.example.com",
    "DATABASE_URL": "sqlite:////tmp/onramp-deploy-check.sqlite3",
}


def test_production_refuses_to_start_without_its_secrets():
    for missing in ("SECRET_KEY", "VAULT_KEYS", "AUDIT_KEYS"):
        env = {k: v for k, v in PROD.items() if k != missing}
        result = _manage("check", env=env)
        assert result.returncode != 0
        assert f"{missing} must be set when DJANGO_ENV=production" in result.stderr


def test_production_deploy_check_has_no_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PROD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_ci_runs_make_test_and_nothing_else():
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    commands = [ln for ln in lines if not ln.startswith(("set ", "cd "))]
    assert commands == ["make test"]
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_every_test_that_uses_the_worker_is_marked_e2e_and_no_other_is(request):
    """`make test-fast` leaves out -m e2e: the conftest hook marks each test whose fixtures bring the worker,
    however indirectly, so none is forgotten by hand (this test sees the items of the session it runs in). The
    soak's scenarios, which start worker processes of their own, are marked e2e by their module."""
    items = request.session.items
    assert request.node in items
    for item in items:
        uses_worker = bool({"worker", "celery_worker"} & set(getattr(item, "fixturenames", ())))
        own_workers = item.get_closest_marker("soak") is not None
        assert (item.get_closest_marker("e2e") is not None) == (uses_worker or own_workers), item.nodeid
