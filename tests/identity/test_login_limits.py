"""Login throttling: a limit per address across usernames (password spraying) besides the one per
username and address, the client's address taken from the trusted proxy's header, and no stranger's
typed username in the hash-chained log."""

import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client, RequestFactory, override_settings

from provisioning.addresses import client_ip
from provisioning.models import AuditEvent
from tests.conftest import PASSWORD

PROXY = "10.0.0.2"  # the TLS proxy in front of gunicorn


def _fail(client: Client, username: str, **extra) -> int:
    return client.post("/login/", {"username": username, "password": "wrong-" + PASSWORD}, **extra).status_code


@pytest.mark.django_db
def test_spraying_many_usernames_from_one_address_locks_that_address(alice):
    client = Client()
    assert settings.AXES_IP_FAILURE_LIMIT > settings.AXES_FAILURE_LIMIT
    for n in range(settings.AXES_IP_FAILURE_LIMIT):  # one guess per username: never the per-user limit
        _fail(client, f"user{n}")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not affected.
    other = Client(REMOTE_ADDR="192.0.2.50")
    assert other.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_a_few_failures_from_one_address_below_its_limit_lock_no_one(alice):
    client = Client()
    for n in range(settings.AXES_IP_FAILURE_LIMIT - 1):
        _fail(client, f"user{n}")
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_logging_in_does_not_reset_the_addresss_count(alice, bob):
    """A sprayer who knows one password cannot clear the per-address count by using it."""
    client = Client()
    for n in range(settings.AXES_IP_FAILURE_LIMIT - 1):
        _fail(client, f"user{n}")
    assert client.post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 302
    client.post("/logout/")
    _fail(client, "user-last")
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 429


@pytest.mark.django_db
@override_settings(TRUSTED_PROXIES=[ipaddress.ip_network("10.0.0.0/24")])
def test_behind_the_proxy_each_client_is_counted_by_its_own_address(alice):
    """Every request comes from the proxy; the address it appends to X-Forwarded-For is the client's.
    What the client itself wrote further left is not trusted."""
    attacker = Client(REMOTE_ADDR=PROXY)
    for n in range(settings.AXES_IP_FAILURE_LIMIT):
        # The attacker forges a different address each time; the proxy appends the real one.
        _fail(attacker, f"user{n}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.66")
    locked = attacker.post("/login/", {"username": "alice", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert locked.status_code == 429
    office = Client(REMOTE_ADDR=PROXY)
    ok = office.post("/login/", {"username": "alice", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert ok.status_code == 302
    login = AuditEvent.objects.get(action="auth.login")
    assert login.details["ip"] == "203.0.113.7"
    assert set(AuditEvent.objects.filter(action="auth.login_failed").values_list("details__ip", flat=True)) == {
        "203.0.113.66"
    }


@pytest.mark.django_db
def test_a_strangers_typed_username_never_reaches_the_audit_log(alice):
    typed = '=HYPERLINK("http://evil")<script>' + "x" * 100
    _fail(Client(), typed)
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert (event.actor_label, event.target, event.error_code) == ("anonymous", "", "UnknownUsername")
    assert "HYPERLINK" not in json.dumps(list(AuditEvent.objects.values()), default=str)
    _fail(Client(), "alice")  # one of ours: named, so a guessed account is visible
    named = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert (named.actor_label, named.target, named.error_code) == ("alice", "alice", "BadCredentials")


def test_point_5_production_trusts_no_forwarded_address_by_default():
    from tests.test_foundation import PROD, _manage

    shown = _manage("shell", "-c", "from django.conf import settings; print(settings.TRUSTED_PROXIES)", env=PROD)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "[]"
    refused = _manage("check", env={**PROD, "TRUSTED_PROXIES": "10.0.0.0/24,nginx"})
    assert refused.returncode != 0 and "TRUSTED_PROXIES: 'nginx' is not an address or a network" in refused.stderr


@pytest.mark.django_db
@override_settings(TRUSTED_PROXIES=[ipaddress.ip_network("10.0.0.0/24")])
def test_point_5_a_forged_forwarded_for_from_outside_the_trusted_proxies_changes_nothing(alice):
    """gunicorn reached without the proxy: the header is the client's own writing, so the lockout holds."""
    direct = Client(REMOTE_ADDR="203.0.113.66")
    for n in range(settings.AXES_IP_FAILURE_LIMIT):
        _fail(direct, f"user{n}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    locked = direct.post("/login/", {"username": "alice", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert locked.status_code == 429
    assert set(AuditEvent.objects.filter(action="auth.login_failed").values_list("details__ip", flat=True)) == {
        "203.0.113.66"
    }


def test_point_5_compose_trusts_the_network_nginx_is_on():
    compose = yaml.safe_load((Path(__file__).resolve().parent.parent.parent / "docker-compose.yml").read_text())
    services = compose["services"]
    subnet = compose["networks"]["internal"]["ipam"]["config"][0]["subnet"]
    assert "internal" in services["proxy"]["networks"]
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["TRUSTED_PROXIES"] == subnet
        assert "TRUSTED_PROXY_COUNT" not in services[name]["environment"]


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("203.0.113.66", "198.51.100.1", "203.0.113.66"),  # not from a proxy: the header is the client's own
        ("10.0.0.2", "", "10.0.0.2"),  # from the proxy, with nothing forwarded
        ("10.0.0.2", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the proxy appended the client's address
        ("10.0.0.2", "203.0.113.7, 172.30.0.5", "203.0.113.7"),  # two trusted proxies, one behind the other
        ("10.0.0.2", "203.0.113.7, not-an-address", "10.0.0.2"),  # a garbled hop: the last trusted one
        ("10.0.0.2", "2001:db8::7", "2001:db8::7"),
    ],
)
@override_settings(TRUSTED_PROXIES=[ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("172.30.0.0/24")])
def test_point_5_the_client_is_the_first_address_from_the_right_that_is_not_a_trusted_proxy(remote, forwarded, client):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == client
