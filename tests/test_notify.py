"""Notifications: a real SMTP server and a webhook receiver on loopback, a real worker for the runs.

Every test searches each message received (the raw SMTP data, its decoded text, the webhook's bodies)
for the generated secrets and their ciphertext, and finds none.
"""

import email
import email.policy
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from provisioning import notify, tasks, vault
from provisioning.models import AuditEvent, Credential, Run
from tests.conftest import customer_make, finished_run, seal_key, spec_data, start_run, wait_for_run
from tests.test_vault import _hits
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
PORTAL = "https://onramp.agency.example"
HOOK_PATH = "/services/T0001/B0002/hook-token-x9"  # a Slack webhook's path is its secret


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """What the loopback SMTP server accepted; `refuse` makes it answer every message 451."""

    def __init__(self):
        self.received: list[tuple[list[str], bytes]] = []
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 Mailbox temporarily unavailable"
        self.received.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.received]

    def texts(self) -> list[str]:
        """Each message as sent and as read: the raw data, the subject and the decoded body."""
        texts = [raw.decode("latin-1") for _, raw in self.received]
        for message in self.messages():
            texts += [message["Subject"], message.get_body(preferencelist=("plain",)).get_content()]
        return texts


@pytest.fixture
def smtp(settings):
    """A real SMTP server (aiosmtpd) on loopback; Django's SMTP backend pointed at it."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's log of every SMTP command
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.PORTAL_URL = PORTAL
    yield inbox
    controller.stop()


class Hook:
    """What the webhook receiver was sent; `status` and `delay` shape its answer."""

    def __init__(self):
        self.posts: list[tuple[str, str, bytes]] = []
        self.status = 200
        self.delay = 0.0

    def texts(self) -> list[str]:
        return [body.decode() for _, _, body in self.posts] + [json.loads(body)["text"] for _, _, body in self.posts]


@pytest.fixture
def webhook(settings):
    """A Slack-style incoming webhook on loopback (http.server)."""
    hook = Hook()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.posts.append((self.path, self.headers["Content-Type"], body))
            time.sleep(hook.delay)
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}"
    settings.NOTIFY_WEBHOOK_TIMEOUT = 2
    yield hook
    server.shutdown()
    server.server_close()


def _sealed_secrets(run: Run) -> list[str]:
    """The run's generated secrets, and their ciphertext, as the vault holds them before a reveal."""
    credentials = list(Credential.objects.filter(run=run, state=Credential.State.SEALED))
    assert credentials, "the run generated no secret to look for"
    return [c.ciphertext for c in credentials] + [vault.decrypt(c.ciphertext) for c in credentials]


def _assert_no_secret(secrets: list[str], *texts: str) -> None:
    assert texts
    for secret in secrets:
        assert len(secret) >= 20
        assert _hits(secret, *texts) == 0


def _wait_for(condition, timeout: float = 30):
    return wait_until(condition, timeout=timeout, message="the notification did not arrive in time")


def _notices(run: Run, action: str = "notify.sent") -> dict[str, AuditEvent]:
    return {event.details["channel"]: event for event in AuditEvent.objects.filter(run=run, action=action)}


def test_a_succeeded_run_emails_its_tech_lead_and_posts_to_the_webhook_without_a_secret(worker, alice, smtp, webhook):
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    secrets = _sealed_secrets(run)
    sent = _wait_for(lambda: len(_notices(run)) == 2 and _notices(run))

    ((recipients, _),) = smtp.received
    assert recipients == ["alice@agency.example"]
    (message,) = smtp.messages()
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message["Subject"] == f"[Onramp] Acme Corp: onboarding succeeded (run {run.short_id})"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert f"{PORTAL}/runs/{run.pk}/" in body
    steps = run.steps.count()
    assert f"all {steps} steps are done ({steps - 1} created)" in body, body  # all but the preflight
    key = Credential.objects.get(run=run, kind=Credential.Kind.ACCESS_KEY)
    assert f"App access key for acme-app (access key id {key.access_key_id})" in body
    assert "Console password for lead@agency.example" in body
    assert "Billing console" in body  # the reminder

    ((path, content_type, raw),) = webhook.posts
    assert path == HOOK_PATH and content_type == "application/json"
    assert json.loads(raw) == {"text": f"{message['Subject']}\n{PORTAL}/runs/{run.pk}/"}
    _assert_no_secret(secrets, *smtp.texts(), *webhook.texts())

    assert sent["email"].details["recipients"] == ["alice@agency.example"]
    assert sent["webhook"].details["recipients"] == ["127.0.0.1"]  # the host: the path is the hook's secret
    assert {e.details["event"] for e in sent.values()} == {"run.succeeded"}
    assert not AuditEvent.objects.filter(action="notify.failed").exists()


def test_a_failed_run_tells_its_tech_lead_what_failed_and_why(worker, alice, smtp, webhook, sandbox):
    sandbox.configure(bucket_taken_at_create="acme-app-media")  # taken after the preflight checked it
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.FAILED
    secrets = _sealed_secrets(run)  # the access key was made before the run failed
    _wait_for(lambda: len(_notices(run)) == 2)

    (message,) = smtp.messages()
    assert message["Subject"] == f"[Onramp] Acme Corp: onboarding failed (run {run.short_id})"
    body = message.get_body(preferencelist=("plain",)).get_content()
    bucket = run.steps.get(key="s3.bucket")
    assert f"1 of {run.steps.count()} steps failed and 2 were skipped" in body, body
    assert f"- {bucket.title}: {bucket.error_message} (BucketAlreadyExists)" in body
    assert "taken by another AWS account" in body
    assert "retry the run from its page" in body and f"{PORTAL}/runs/{run.pk}/" in body
    (text,) = [json.loads(raw)["text"] for _, _, raw in webhook.posts]
    assert text.startswith("[Onramp] Acme Corp: onboarding failed")
    assert _notices(run)["email"].details["event"] == "run.failed"
    _assert_no_secret(secrets, *smtp.texts(), *webhook.texts())


def test_notifications_that_cannot_be_delivered_are_audited_and_the_run_still_succeeds(
    worker, alice, settings, webhook, caplog
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port()  # nothing listens: SMTP is down
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    webhook.status = 500
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    assert AuditEvent.objects.filter(run=run, action="run.succeeded").exists()
    failed = _wait_for(lambda: len(_notices(run, "notify.failed")) == 2 and _notices(run, "notify.failed"))

    assert failed["email"].details["error"].startswith("ConnectionRefusedError")
    assert failed["email"].details["recipients"] == ["alice@agency.example"]
    assert failed["webhook"].details["error"] == "HTTP 500 from the webhook"
    assert len(webhook.posts) == 1  # it was tried once, not retried into the run
    for event in failed.values():
        assert event.outcome == "error" and event.error_code == "NotificationFailed"
        assert set(event.details) == {"channel", "event", "ref", "recipients", "error"}  # never the body
    assert not _notices(run)
    logged = caplog.text
    assert "Notification run.succeeded by email" in logged and "Notification run.succeeded by webhook" in logged
    stored = json.dumps([[e.target, e.details] for e in AuditEvent.objects.filter(action__startswith="notify.")])
    for text in (logged, stored):
        assert "hook-token-x9" not in text  # the webhook's URL is a secret too
        assert "Hello alice" not in text and "onboarding succeeded" not in text


def test_a_refusing_smtp_server_and_a_webhook_that_does_not_answer_are_failures_not_errors(
    alice, settings, smtp, webhook
):
    smtp.refuse = True
    webhook.delay, settings.NOTIFY_WEBHOOK_TIMEOUT = 1.5, 0.3
    run = finished_run(alice)
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    notice = notify.run_notify(run_id=run.pk)  # returns: nothing raised into the caller
    assert notice.event == "run.succeeded"
    failed = _notices(run, "notify.failed")
    assert failed["email"].details["error"].startswith("SMTPDataError: (451")
    assert failed["webhook"].details["error"] == "ReadTimeout: no answer within 0.3 s"
    assert smtp.received == [] and not _notices(run)


def test_a_run_notice_delivered_twice_is_sent_once(alice, smtp, webhook):
    run = finished_run(alice, team=[])
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    secret = "run-notice-secret-0123456789abcdef"
    seal_key(run, secret=secret)
    notify.run_notify(run_id=run.pk)
    notify.run_notify(run_id=run.pk)  # the task delivered again (acks_late after a worker died)
    assert len(smtp.received) == 1 and len(webhook.posts) == 1
    assert len(_notices(run)) == 2
    _assert_no_secret([secret, Credential.objects.get(run=run).ciphertext], *smtp.texts(), *webhook.texts())


def test_an_unrevealed_secret_is_warned_about_once_two_hours_before_it_is_wiped(alice, smtp, webhook):
    assert settings.NOTIFY_SECRET_WARNING == 2 * 3600
    secret = "warned-secret-value-0123456789"
    credential = seal_key(finished_run(alice), secret=secret)
    revealed = seal_key(credential.run, secret="revealed-secret-0123456789", access_key_id="AKIAREVEALED")
    vault.credential_reveal(credential_id=revealed.pk, user=alice)
    wipe = credential.expires_at

    assert notify.credentials_warn(now=wipe - timedelta(hours=2, seconds=1)) == 0
    assert smtp.received == [] and webhook.posts == []
    assert notify.credentials_warn(now=wipe - timedelta(hours=2) + timedelta(minutes=1)) == 1
    assert notify.credentials_warn(now=wipe - timedelta(hours=1)) == 0  # once per credential
    credential.refresh_from_db()
    assert credential.warned_at == wipe - timedelta(hours=2) + timedelta(minutes=1)
    assert credential.state == Credential.State.SEALED  # warned, not wiped

    ((recipients, _),) = smtp.received
    assert recipients == ["alice@agency.example"]
    (message,) = smtp.messages()
    wiped_at = f"{wipe.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    assert message["Subject"] == f"[Onramp] Acme Corp: reveal the app access key for acme-app before {wiped_at}"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "(access key id AKIAIOSFODNN7EXAMPLE)" in body and f"from run {credential.run.short_id}" in body
    assert f"It will be wiped at {wiped_at}, in 1 hour 59 minutes;" in body
    assert f"{PORTAL}{reverse('credential_detail', args=[credential.pk])}" in body
    assert len(webhook.posts) == 1
    sent = AuditEvent.objects.get(action="notify.sent", details__channel="email")
    assert sent.details["event"] == "credential.expiring" and sent.details["ref"] == str(credential.pk)
    _assert_no_secret([secret, credential.ciphertext], *smtp.texts(), *webhook.texts())

    # Past the wipe nobody is warned: the vault's expiry has the last word.
    late = seal_key(credential.run, secret="late-secret-value-0123456789")
    assert notify.credentials_warn(now=late.expires_at + timedelta(seconds=1)) == 0


def test_the_warning_beat_task_runs_on_the_worker(worker, alice, smtp):
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "provisioning.tasks.credentials_warn" in schedule
    secret = "beat-warned-secret-0123456789"
    credential = seal_key(finished_run(alice), secret=secret)
    Credential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() + timedelta(minutes=90))
    tasks.credentials_warn.delay()
    _wait_for(lambda: Credential.objects.filter(pk=credential.pk, warned_at__isnull=False).exists() and smtp.received)
    (message,) = smtp.messages()
    assert message["Subject"].startswith("[Onramp] Acme Corp: reveal the app access key for acme-app before ")
    assert re.search(r"in 1 hour (29|30) minutes;", message.get_body(preferencelist=("plain",)).get_content())
    _assert_no_secret([secret, credential.ciphertext], *smtp.texts())


def test_drift_notify_tells_the_customers_tech_leads_and_the_admins(
    transactional_db, alice, bob, charlie, dana, smtp, webhook
):
    run = finished_run(alice)
    customer = run.customer
    finished_run(bob, account_id="444455556666", customer="Other Co")  # bob ran another customer only
    Run.objects.create(customer=customer, started_by=charlie, spec=spec_data(), status=Run.Status.FAILED)
    secret = "drift-case-secret-0123456789"
    credential = seal_key(run, secret=secret)
    differences = [
        "Block Public Access on bucket acme-app-media: expected all four flags on, found BlockPublicPolicy off.",
        "Access keys of acme-app: expected 1, found 2 (AKIAEXTRAKEY made outside Onramp).",
    ]
    checked_at = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)

    with transaction.atomic():
        notice = notify.drift_notify(customer=customer, differences=differences, checked_at=checked_at)
        assert smtp.received == []  # sent once the check's transaction commits
    assert notice.recipients == ("alice@agency.example", "dana@agency.example")  # not bob, not charlie
    assert sorted(rcpt for rcpt, _ in smtp.received) == [["alice@agency.example"], ["dana@agency.example"]]
    link = f"{PORTAL}/customers/{customer.slug}/#drift"  # the customer page: tech leads open it, not the admin
    for message in smtp.messages():
        assert message["Subject"] == "[Onramp] Acme Corp: the AWS account drifted (2 differences)"
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert "The drift check of 2026-11-28 02:00 UTC" in body and link in body
        for difference in differences:
            assert f"- {difference}" in body
    assert (
        json.loads(webhook.posts[0][2])["text"]
        == f"[Onramp] Acme Corp: the AWS account drifted (2 differences)\n{link}"
    )
    sent = AuditEvent.objects.get(action="notify.sent", details__channel="email")
    assert sent.customer_id == customer.pk and sent.run_id is None
    assert sent.details["recipients"] == ["alice@agency.example", "dana@agency.example"]
    _assert_no_secret([secret, credential.ciphertext], *smtp.texts(), *webhook.texts())


def test_email_url_reaches_smtp_and_development_prints_to_the_console(smtp):
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL": "sqlite://:memory:"}

    def sendtestemail(**env):
        return subprocess.run(
            [sys.executable, "manage.py", "sendtestemail", "alice@agency.example"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env={**base, **env},
        )  # fmt: skip

    development = sendtestemail(DJANGO_ENV="development")
    assert development.returncode == 0, development.stderr
    assert "To: alice@agency.example" in development.stdout and smtp.received == []
    url = f"smtp://{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    relayed = sendtestemail(DJANGO_ENV="development", EMAIL_URL=url, DEFAULT_FROM_EMAIL="onramp@agency.example")
    assert relayed.returncode == 0, relayed.stderr
    ((recipients, raw),) = smtp.received
    assert recipients == ["alice@agency.example"] and b"From: onramp@agency.example" in raw


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["<!channel>", "<https://evil.example|click>", "Acme & <@U012AB3CD>"])
def test_point_13_a_customer_name_reaches_the_webhook_with_slacks_control_sequences_escaped(webhook, name):
    """Slack reads <!channel> as a ping of everyone and <url|label> as a link: the webhook's text carries the name
    as the entities Slack's formatting reference asks for (&amp; &lt; &gt;), shown as typed."""
    customer = customer_make(name=name)
    notice = notify.drift_notify(customer=customer, differences=["a difference"], checked_at=timezone.now())
    notify.notice_deliver(notice)  # inside the test's transaction on_commit never fires: delivered here
    ((_, _, raw),) = webhook.posts
    text = json.loads(raw)["text"]
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in text
    assert "<" not in text and ">" not in text and "&amp;lt;" not in text
    assert text.endswith(reverse("customer_detail", args=[customer.slug]) + "#drift")  # the link stays a link
