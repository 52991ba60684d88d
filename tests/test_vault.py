"""Generated credentials: sealed at once, revealed exactly once, never leaked, expired, rotated."""

import base64
import html
import logging
import subprocess
import threading
from datetime import timedelta

import pytest
import redis
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from portal.celery import app as celery_app
from provisioning import tasks, vault
from provisioning.models import AuditEvent, Credential, Run
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, finished_run, seal_key, start_run, wait_for_run


def _db_dump() -> str:
    db = connection.settings_dict
    return subprocess.run(
        ["pg_dump", "--data-only", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], db["NAME"]],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip


def _redis_dump() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(repr(key))
        kind = client.type(key)
        if kind == b"string":
            parts.append(repr(client.get(key)))
        elif kind == b"list":
            parts.extend(map(repr, client.lrange(key, 0, -1)))
        elif kind == b"hash":
            parts.extend(map(repr, client.hgetall(key).items()))
        elif kind == b"set":
            parts.extend(map(repr, client.smembers(key)))
        elif kind == b"zset":
            parts.extend(map(repr, client.zrange(key, 0, -1)))
    return "\n".join(parts)


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]


def _hits(secret: str, *haystacks: str) -> int:
    return sum(h.count(form) for h in haystacks for form in _forms(secret))


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_secrets_exist_only_as_ciphertext_and_leave_no_trace_after_the_reveal(worker, alice, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    credentials = list(Credential.objects.filter(run=run).order_by("kind"))
    assert [c.kind for c in credentials] == ["access_key", "console_password"]
    secrets = {c.pk: vault.decrypt(c.ciphertext) for c in credentials}
    for secret in secrets.values():
        assert len(secret) >= 20

    # Before the reveal: only ciphertext anywhere.
    dump, broker = _db_dump(), _redis_dump()
    logs = caplog.text + "".join(capfd.readouterr())
    for credential in credentials:
        assert credential.ciphertext in dump  # the sealed form is there…
        assert _hits(secrets[credential.pk], dump, broker, logs) == 0  # …and nothing else
    assert AuditEvent.objects.filter(run=run, action="aws.iam.CreateAccessKey").exists()

    client = _logged_in(alice)
    shown = {}
    for credential in credentials:
        response = client.post(reverse("credential_reveal", args=[credential.pk]))
        assert response.status_code == 200
        assert response["Cache-Control"].startswith("no-store")
        shown[credential.pk] = html.unescape(response.content.decode())  # a password may hold & or <
        assert secrets[credential.pk] in shown[credential.pk]
    key = credentials[0]
    assert f"AWS_ACCESS_KEY_ID={key.access_key_id}" in shown[key.pk]
    assert f"AWS_SECRET_ACCESS_KEY={secrets[key.pk]}" in shown[key.pk]
    assert "AWS_REGION=us-west-2" in shown[key.pk] and "AWS_S3_BUCKET=acme-app-media" in shown[key.pk]
    console = credentials[1]
    assert "https://acme-corp.signin.aws.amazon.com/console" in shown[console.pk]
    assert "reset is required" in shown[console.pk]

    # After the reveal: wiped everywhere, including the ciphertext.
    dump, broker = _db_dump(), _redis_dump()
    logs = caplog.text + "".join(capfd.readouterr())
    for credential in credentials:
        assert credential.ciphertext not in dump
        assert _hits(secrets[credential.pk], dump, broker, logs) == 0
        credential.refresh_from_db()
        assert credential.state == Credential.State.REVEALED and credential.ciphertext == ""
        assert credential.revealed_by == alice


def test_exactly_one_of_twenty_concurrent_reveals_gets_the_secret(transactional_db, alice):
    credential = seal_key(finished_run(alice), secret="s3cr3t-" + "x" * 33)
    url = reverse("credential_reveal", args=[credential.pk])
    barrier = threading.Barrier(20)
    results: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def reveal():
        client = _logged_in(alice)
        barrier.wait()
        response = client.post(url)
        with lock:
            results.append((response.status_code, b"s3cr3t-" in response.content))
        connection.close()

    threads = [threading.Thread(target=reveal) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 20
    assert sorted(results).count((200, True)) == 1
    assert sorted(results).count((410, False)) == 19
    assert AuditEvent.objects.filter(action="credential.revealed").count() == 1
    assert AuditEvent.objects.filter(action="credential.reveal_refused").count() == 19
    credential.refresh_from_db()
    assert credential.refused_attempts == 19


@pytest.fixture
def sealed(db, alice):
    return seal_key(finished_run(alice), secret="the-secret-value-1234567890", region="us-west-2", bucket="b")


def test_get_never_reveals(sealed, alice):
    client = _logged_in(alice)
    page = client.get(reverse("credential_detail", args=[sealed.pk]))
    assert page.status_code == 200
    assert b"the-secret-value" not in page.content and b"Reveal once" in page.content
    assert client.get(reverse("credential_reveal", args=[sealed.pk])).status_code == 405
    run_page = client.get(reverse("run_detail", args=[sealed.run_id]))
    assert b"the-secret-value" not in run_page.content
    sealed.refresh_from_db()
    assert sealed.state == Credential.State.SEALED and sealed.ciphertext


def test_another_tech_lead_gets_404_and_an_admin_may_reveal(sealed, bob, dana):
    client = _logged_in(bob)
    assert client.get(reverse("credential_detail", args=[sealed.pk])).status_code == 404
    assert client.post(reverse("credential_reveal", args=[sealed.pk])).status_code == 404
    run_page = client.get(reverse("run_detail", args=[sealed.run_id]))
    assert run_page.status_code == 200 and b"Reveal once" not in run_page.content
    sealed.refresh_from_db()
    assert sealed.state == Credential.State.SEALED
    admin = _logged_in(dana).post(reverse("credential_reveal", args=[sealed.pk]))
    assert admin.status_code == 200 and b"the-secret-value-1234567890" in admin.content


def test_after_the_reveal_the_page_says_who_and_when_with_410_and_refusals_show_on_the_run(sealed, alice, dana):
    _logged_in(alice).post(reverse("credential_reveal", args=[sealed.pk]))
    again = _logged_in(dana).post(reverse("credential_reveal", args=[sealed.pk]))
    assert again.status_code == 410 and b"the-secret-value" not in again.content
    page = _logged_in(alice).get(reverse("credential_detail", args=[sealed.pk]))
    assert page.status_code == 410
    assert b"Revealed by alice" in page.content
    run_page = _logged_in(alice).get(reverse("run_detail", args=[sealed.run_id])).content.decode()
    assert "revealed by alice" in run_page
    assert "Someone tried to reveal" in run_page and "rotate it" in run_page
    refused = AuditEvent.objects.get(action="credential.reveal_refused")
    assert refused.actor == dana and refused.outcome == "refused"


def test_an_unrevealed_secret_expires_after_the_ttl(sealed, alice):
    lifetime = sealed.expires_at - sealed.created_at
    assert abs(lifetime - timedelta(seconds=settings.CREDENTIAL_TTL)) < timedelta(seconds=1)
    assert vault.credentials_expire(now=sealed.expires_at - timedelta(seconds=1)) == 0
    assert vault.credentials_expire(now=sealed.expires_at + timedelta(seconds=1)) == 1
    sealed.refresh_from_db()
    assert sealed.state == Credential.State.EXPIRED and sealed.ciphertext == ""
    assert AuditEvent.objects.filter(action="credential.expired", target="acme-app").exists()
    page = _logged_in(alice).get(reverse("run_detail", args=[sealed.run_id])).content.decode()
    assert "expired unrevealed and wiped" in page and "Issue a new key" in page
    assert _logged_in(alice).post(reverse("credential_reveal", args=[sealed.pk])).status_code == 410


def test_the_beat_task_expires_through_the_worker(worker, alice):
    credential = seal_key(finished_run(alice), secret="expiring-secret-0123456789")
    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "provisioning.tasks.credentials_expire" in schedule
    tasks.credentials_expire.delay()
    for _ in range(100):
        credential.refresh_from_db()
        if credential.state == Credential.State.EXPIRED:
            break
        celery_app.control.ping(timeout=0.1)
    assert credential.state == Credential.State.EXPIRED and credential.ciphertext == ""


def test_rotating_the_vault_key_re_encrypts_what_is_unrevealed(sealed):
    old_keys = list(settings.VAULT_KEYS)
    new_key = Fernet.generate_key().decode()
    with override_settings(VAULT_KEYS=[new_key, *old_keys]):
        call_command("vault_rotate", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with override_settings(VAULT_KEYS=[new_key]):
        sealed.refresh_from_db()
        assert vault.decrypt(sealed.ciphertext) == "the-secret-value-1234567890"
    with override_settings(VAULT_KEYS=old_keys), pytest.raises(vault.VaultError):
        vault.decrypt(sealed.ciphertext)


def test_issue_a_new_key_shows_it_once_then_removes_the_old_one(worker, alice, sandbox):
    run = wait_for_run(start_run(alice, team=[]))
    old_key = run.summary["access_key_id"]
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    client = _logged_in(alice)
    response = client.post(reverse("rotate_start", args=[run.pk]))
    new = Credential.objects.exclude(access_key_id=old_key).get(run=run)
    assert response.status_code == 302 and response["Location"] == reverse("credential_detail", args=[new.pk])
    assert new.replaces_access_key_id == old_key
    keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]}
    assert keys == {old_key, new.access_key_id}
    # Removing the old key before the new one was revealed is refused.
    client.post(reverse("rotate_finish", args=[new.pk]))
    assert len(iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 2
    revealed = client.post(reverse("credential_reveal", args=[new.pk]))
    assert f"AWS_ACCESS_KEY_ID={new.access_key_id}".encode() in revealed.content
    client.post(reverse("rotate_finish", args=[new.pk]))
    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]]
    assert keys == [new.access_key_id]
    assert AuditEvent.objects.filter(action="aws.iam.DeleteAccessKey", run=run).exists()
    assert AuditEvent.objects.filter(action="credential.rotation_finished", actor=alice).exists()
    # "What exists now" on the run's page shows the key the app uses now, not the one removed.
    summary = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert new.access_key_id in summary.split('id="summary"')[1].split("</section>")[0]
    assert old_key not in summary.split('id="summary"')[1].split("</section>")[0]


def test_issue_a_new_key_refuses_up_front_when_the_user_has_two(worker, alice, sandbox):
    run = wait_for_run(start_run(alice, team=[]))
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_access_key(UserName="acme-app")  # someone made a second key by hand
    response = _logged_in(alice).post(reverse("rotate_start", args=[run.pk]), follow=True)
    assert "already has two access keys" in response.content.decode()
    assert len(iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 2
    assert AuditEvent.objects.filter(run=run, action="aws.iam.CreateAccessKey").count() == 1  # the run's own
    assert Credential.objects.filter(run=run).count() == 1


def test_a_secret_past_its_expiry_is_refused_at_reveal_even_before_the_expiry_task_runs(sealed, alice):
    """Beat down or late: the reveal itself checks expires_at, wipes the secret and audits both."""
    Credential.objects.filter(pk=sealed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _logged_in(alice).post(reverse("credential_reveal", args=[sealed.pk]))
    assert response.status_code == 410
    assert b"the-secret-value" not in response.content and b"expired unrevealed" in response.content
    sealed.refresh_from_db()
    assert (sealed.state, sealed.ciphertext, sealed.revealed_by) == (Credential.State.EXPIRED, "", None)
    refused = AuditEvent.objects.get(action="credential.reveal_refused")
    assert (refused.actor, refused.outcome, refused.error_code) == (alice, "refused", "expired")
    assert AuditEvent.objects.filter(action="credential.expired", target="acme-app").count() == 1
    assert vault.credentials_expire() == 0  # nothing left for the task
