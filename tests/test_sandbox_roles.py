"""sandbox/roles.py: in the sandbox of `make run`, each customer's role is deployed from Onramp's own
template, as the customer's administrator would deploy it, never by the portal (issue 25, point 1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from provisioning import customers
from provisioning.registry import ROLE_NAME, ROLE_TEMPLATE_VERSION
from provisioning.role import template as role_template
from sandbox.controller import admin_session, free_port
from tests.conftest import customer_make
from tests.test_make_run import _sandbox, _stop

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ".venv/bin/python -m sandbox.roles --customer"


def sandbox_roles(url: str, *args: str) -> str:
    """The script as make run runs it: its own process, the portal's database and the sandbox's endpoint."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_SETTINGS"))},
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "AWS_ENDPOINT_URL": url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.roles", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def deployed_role(url: str, account_id: str) -> dict:
    iam = admin_session(url, account_id).client("iam", endpoint_url=url, region_name="us-east-1")
    role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=ROLE_NAME)["Tags"]}
    return {"trust": json.loads(trust) if isinstance(trust, str) else trust, "tags": tags}


@pytest.mark.django_db(transaction=True)
def test_point_1_every_customers_role_is_deployed_in_a_restored_sandbox_and_one_added_later_on_request(
    tmp_path, dana, sandbox
):
    port, state = free_port(), tmp_path / "state.pickle.gz"
    url = f"http://127.0.0.1:{port}"
    # A sandbox saved before roles were deployed: Demo Co's account has something, but no role.
    process, out = _sandbox(port, state)
    try:
        admin_session(url, "111122223333").client("iam", endpoint_url=url, region_name="us-east-1").create_user(
            UserName="demo-app"
        )
    finally:
        _stop(process, out)
    demo = customer_make(
        name="Demo Co", slug="demo-co", aws_account_id="111122223333", external_id="demo-external-id-0123456789"
    )
    customer_make(name="Keys Ltd", slug="keys", aws_account_id="999988887777", access="keys", role_arn="")

    process, out = _sandbox(port, state)
    try:
        assert "restored from" in out.lines[0]
        printed = sandbox_roles(url)
        assert f"Demo Co (account 111122223333): role {ROLE_NAME} deployed" in printed, printed
        assert "Keys Ltd" not in printed  # reached with stored keys: no role to deploy
        role = deployed_role(url, "111122223333")
        assert role["tags"]["onramp-template-version"] == str(ROLE_TEMPLATE_VERSION)
        # Onramp's own template: the trust policy names the portal's account and this customer's external id.
        expected = role_template.trust_policy_document(
            portal_account_id="123456789012", external_id="demo-external-id-0123456789"
        )
        assert role["trust"]["Statement"] == expected["Statement"]
        assert "is there (template version" in sandbox_roles(url)  # run again: nothing made twice

        # A customer an Admin adds later: the line the admin page shows deploys its role alone.
        globex = customer_make(
            name="Globex",
            slug="globex",
            aws_account_id="444455556666",
            role_arn="arn:aws:iam::444455556666:role/OnrampAccess",
            external_id="globex-external-id-0001",
        )
        printed = sandbox_roles(url, "--customer", "globex")
        assert printed.startswith("Globex (account 444455556666): role OnrampAccess deployed"), printed
        assert "Demo Co" not in printed

        # What the issue saw fail: the preflight's read of the role's version (Check connection runs it), as
        # make run's portal does it. Onramp's identity is the process's credential chain, resolved once per process
        # (the `sandbox` fixture's keys; make run's sandbox takes any): setting other keys in the environment here
        # would reach only a process that had not resolved them yet, and stay there for every later test.
        with override_settings(AWS_ENDPOINT_URL=url):
            for customer in (demo, globex):
                result = customers.customer_check_connection(customer=customer, user=dana)
                assert result.ok, result.message
                assert f"role template version {ROLE_TEMPLATE_VERSION}" in result.message
    finally:
        _stop(process, out)


def test_the_script_deploys_nothing_without_a_sandbox_endpoint():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_SETTINGS"))}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.roles"],
        cwd=ROOT,
        env={**env, "DJANGO_ENV": "test", "AWS_ENDPOINT_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "deploys roles into the sandbox AWS only" in done.stderr


@pytest.mark.django_db
def test_point_1_the_customers_admin_page_shows_the_one_line_on_a_sandbox_installation(client, dana):
    customer = customer_make(name="Globex", slug="globex")
    client.force_login(dana)
    page = reverse("admin:provisioning_customer_change", args=[customer.pk])
    with override_settings(ROLE_DEPLOY_COMMAND=COMMAND):
        assert f"{COMMAND} globex</code>" in client.get(page).content.decode()
    assert "sandbox.roles" not in client.get(page).content.decode()  # on AWS: the template only


def test_no_module_of_provisioning_knows_the_sandbox_tooling():
    for path in (ROOT / "provisioning").rglob("*.py"):
        text = path.read_text()
        assert "sandbox_roles" not in text and "import moto" not in text and "from tests" not in text, path
